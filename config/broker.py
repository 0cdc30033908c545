"""The Redis broker transport, with one redis-py client per channel for its synchronous
commands (CELERY_BROKER_TRANSPORT, for a redis:// broker).

kombu's Redis channel makes a new redis-py client for every synchronous broker operation:
each task sent, and each task received and acknowledged by a worker (acks_late keeps it
in the unacked hash until then). A client is cheap in connections (it takes one from
the channel's pool per command) but not in CPU: its constructor copies a table of about
170 response callbacks, ~50 µs, two or three times a payment. redis-py clients are
thread-safe, so one per pool serves every operation of the channel.
"""

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _sync_client: tuple[Any, Any] | None = None  # (the pool it uses, the client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the event loop's own client (BRPOP), made once by kombu
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        cached = self._sync_client
        if cached is None or cached[0] is not pool:  # first use, or a new pool
            cached = self._sync_client = (pool, super()._create_client())  # type: ignore[misc]
        return cached[1]


class Transport(redis.Transport):
    Channel = Channel
