"""A Redis that hangs (it accepts connections and never answers) costs a worker one timeout
per back-off period, not one or two per API request: after a failed round trip the rate
limit and the API key cache skip Redis for `core.cache.REDIS_BACK_OFF` seconds (ADR 0008).
Round trips are counted as connections to the hung Redis: redis-py drops a connection
whose round trip timed out, so each attempt opens a new one."""

import gc
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.test import override_settings

import core.cache
from accounts.api_keys import api_key_revoke
from tests.api.helpers import ApiClient, assert_error
from tests.api.test_operations import redis_down

# The hung Redis's socket timeouts (1 s in production).
TIMEOUT = 0.2


class HungRedis:
    """A local TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)  # to notice `close`
        self.connections: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def location(self) -> str:
        return f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections.append(connection)

    def close(self) -> None:
        self.closed.set()
        self.thread.join()
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def hung_redis() -> Iterator[HungRedis]:
    redis = HungRedis()
    yield redis
    redis.close()


def _timed_requests(api: ApiClient, count: int) -> list[float]:
    """Seconds each of `count` requests took; each must succeed. The garbage collector is
    held off meanwhile: in the process of a whole suite, a full collection can take longer
    than the timeout these bounds are about (a first request of 0.48 s was seen once)."""
    elapsed = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(count):
            start = time.monotonic()
            assert api.get("customers").status_code == 200
            elapsed.append(time.monotonic() - start)
    finally:
        gc.enable()
    return elapsed


@pytest.mark.parametrize("rate", ["1000000/second", "off"])
@pytest.mark.parametrize("cached", [True, False], ids=["cached key", "new key"])
def test_only_the_first_request_pays_a_timeout(
    hung_redis: HungRedis,
    api: ApiClient,
    rate: str,
    cached: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with override_settings(API_RATE_LIMIT=rate):
        if cached:
            api.get("customers")  # cached under the working Redis
        with redis_down(hung_redis.location, timeout=TIMEOUT), caplog.at_level(logging.INFO):
            elapsed = _timed_requests(api, 4)

    assert len(hung_redis.connections) == 1
    # Loose bounds: the first request waits for one timeout, not two; the others for none.
    assert TIMEOUT <= elapsed[0] < 2 * TIMEOUT, elapsed
    assert sum(elapsed[1:]) < TIMEOUT, elapsed
    # One warning for the outage, none per request.
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in warnings] == ["core.cache"]


def test_after_the_back_off_redis_is_asked_again(
    hung_redis: HungRedis, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.cache, "REDIS_BACK_OFF", 0.5)
    with redis_down(hung_redis.location, timeout=TIMEOUT):
        _timed_requests(api, 2)
        assert len(hung_redis.connections) == 1

        time.sleep(0.5)
        elapsed = _timed_requests(api, 2)

    assert len(hung_redis.connections) == 2
    assert elapsed[0] >= TIMEOUT  # asked Redis again, and waited
    assert elapsed[1] < TIMEOUT  # then skipped it again


def test_a_revocation_tries_to_announce_itself_during_the_back_off(
    hung_redis: HungRedis, api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert api.api_key is not None
    with redis_down(hung_redis.location, timeout=TIMEOUT):
        api.get("customers")  # starts the back-off
        api_key_revoke(api_key=api.api_key)

        assert len(hung_redis.connections) == 2
        assert "API key change not announced" in caplog.text
        assert_error(api.get("customers"), 401, "authentication_error")
