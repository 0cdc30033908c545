"""Direct access to the Redis behind the default cache, for the per-request counters that
must cost one round trip (rate limits, the API key cache's generation), and the back-off
that keeps a Redis that does not answer from costing every request a timeout."""

import functools
import logging
import time
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

# After a round trip to Redis fails, the per-request round trips skip Redis for this many
# seconds: during an outage a worker pays one timeout (socket_timeout) per period, not one
# or two per request.
REDIS_BACK_OFF = 5.0
# time.monotonic() until which they skip it. One float, written under the GIL: at worst two
# threads of a worker that fail at once both start the back-off.
_skip_until = 0.0


class RedisUnavailable(Exception):
    """A round trip to Redis failed, or was skipped because one failed less than
    `REDIS_BACK_OFF` seconds ago."""


@functools.lru_cache(maxsize=16)
def _client(cache_client: Any) -> Any:
    """A Redis client on the cache's connection pool, made once: Django's cache builds a
    new one for every call, which costs more than the round trip."""
    return cache_client.get_client(write=True)


def default_redis() -> tuple[Any, RedisCache] | None:
    """The default cache's Redis client and the cache (whose `make_key` gives
    a name its prefix and version), or None when the cache is not Redis (the demo's local
    memory)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return _client(backend._cache), backend  # type: ignore[attr-defined]


def execute(pipeline: Any, *, during_back_off: bool = False) -> list[Any]:
    """Send a pipeline of the default cache's Redis: one round trip, its results.

    Raises RedisUnavailable when Redis fails, which starts a back-off (logged here, once),
    and at once, without asking Redis, during a back-off unless `during_back_off`."""
    global _skip_until
    if not during_back_off and time.monotonic() < _skip_until:
        raise RedisUnavailable("not asked: Redis failed less than REDIS_BACK_OFF s ago")
    try:
        return pipeline.execute()
    except Exception as error:
        _skip_until = time.monotonic() + REDIS_BACK_OFF
        logger.warning(
            "Redis did not answer: rate limits and the API key cache skip it for %g s",
            REDIS_BACK_OFF,
            exc_info=True,
        )
        raise RedisUnavailable(str(error)) from error
