"""Operations (SPEC §4.1): rate limiting per API key, request ids, structured logs, health
probes and Prometheus metrics."""

import contextlib
import io
import json
import logging
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.test import Client, override_settings

import core.cache
import core.health
from accounts.api.throttling import ApiKeyRateThrottle
from accounts.api_keys import api_key_create
from accounts.models import Merchant
from audit.models import AuditLog
from core.api.throttling import parse_rate
from tests import prometheus
from tests.api.helpers import ApiClient, assert_error

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
LOCMEM_CACHE = "django.core.cache.backends.locmem.LocMemCache"
GENERATED_REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
# A fixed clock for the throttle: 19.75 s before the end of a one-minute window.
NOW = 1_000_000.25


def closed_port() -> int:
    """A local TCP port that nothing listens on (just released by us)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def redis_cache(location: str | None = None, *, timeout: float = 1) -> dict[str, Any]:
    """CACHES with a Redis default cache and a key prefix of its own, so that counters of
    other runs sharing the Redis database do not meet these tests'."""
    return {
        "default": {
            "BACKEND": REDIS_CACHE,
            "LOCATION": location or settings.REDIS_URL,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
        }
    }


@contextlib.contextmanager
def redis_down(location: str | None = None, *, timeout: float = 1) -> Iterator[None]:
    """The default cache on a Redis that does not answer (a closed port unless given). The
    back-off its failure starts (core.cache) ends with the block: later tests ask Redis."""
    location = location or f"redis://127.0.0.1:{closed_port()}/0"
    with override_settings(CACHES=redis_cache(location, timeout=timeout)):
        try:
            yield
        finally:
            core.cache._skip_until = 0.0


def locmem_cache() -> dict[str, Any]:
    return {"default": {"BACKEND": LOCMEM_CACHE, "LOCATION": f"test-{uuid.uuid4().hex}"}}


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The throttle's clock, fixed at NOW; set `clock[0]` to move it."""
    clock = [NOW]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", staticmethod(lambda: clock[0]))
    yield clock


@pytest.fixture(params=["redis", "locmem"])
def cache_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each rate-limit test on Redis (production, tests) and local memory (the demo)."""
    with override_settings(CACHES=redis_cache() if request.param == "redis" else locmem_cache()):
        yield request.param


# Rate limiting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("100/second", (100, 1)),
        ("5/s", (5, 1)),
        ("6000/minute", (6000, 60)),
        ("10/min", (10, 60)),
        ("1000/hour", (1000, 3600)),
        ("50000/day", (50000, 86400)),
        (" 7 / Second ", (7, 1)),
        ("off", None),
        ("", None),
        (None, None),
    ],
)
def test_rate_setting_is_parsed_like_drf(rate: str | None, parsed: tuple[int, int]) -> None:
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["100", "abc/second", "10/fortnight", "0/second", "-1/s"])
def test_a_malformed_rate_is_a_configuration_error(rate: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        parse_rate(rate)


@override_settings(API_RATE_LIMIT="3/minute")
def test_over_the_limit_is_a_429_with_retry_after(
    cache_backend: str, frozen_clock: list[float], api: ApiClient
) -> None:
    for _ in range(3):
        assert api.get("customers").status_code == 200

    response = api.get("customers", HTTP_X_REQUEST_ID="req_throttled_1")

    assert_error(response, 429, "rate_limit_error", code="rate_limited", param=None)
    assert response["Retry-After"] == "20"  # 19.75 s left in the window, rounded up
    assert response["X-Client-Request-Id"] == "req_throttled_1"
    # Writes count against the same budget.
    assert_error(api.post("customers", {"name": "Ann"}), 429, "rate_limit_error")


@override_settings(API_RATE_LIMIT="3/minute")
def test_refused_writes_count_against_the_rate_limit(
    cache_backend: str, frozen_clock: list[float], read_only_api: ApiClient
) -> None:
    # A read-only key's refused write is audited; the rate limit bounds how fast a leaked
    # key can add such rows to the append-only log.
    for _ in range(3):
        assert_error(read_only_api.post("customers", {"name": "x"}), 403, "permission_error")
    assert_error(read_only_api.post("customers", {"name": "x"}), 429, "rate_limit_error")
    assert_error(read_only_api.get("customers"), 429, "rate_limit_error")
    assert AuditLog.objects.filter(action="api_key.write_denied").count() == 3


@override_settings(API_RATE_LIMIT="3/minute")
def test_the_counter_lives_in_the_configured_cache(
    cache_backend: str, frozen_clock: list[float], api: ApiClient
) -> None:
    for _ in range(2):
        api.get("customers")

    assert type(caches["default"]).__module__.endswith(cache_backend)
    assert api.api_key is not None
    window = int(NOW // 60)
    assert caches["default"].get(f"throttle:api_key:{api.api_key.pk}:60:{window}") == 2


@override_settings(API_RATE_LIMIT="2/second")
def test_retry_after_is_at_least_one_second(
    cache_backend: str, frozen_clock: list[float], api: ApiClient
) -> None:
    frozen_clock[0] = 500.9
    for _ in range(2):
        assert api.get("customers").status_code == 200

    response = api.get("customers")

    assert_error(response, 429, "rate_limit_error")
    assert response["Retry-After"] == "1"


@override_settings(API_RATE_LIMIT="2/minute")
def test_the_next_window_starts_afresh(
    cache_backend: str, frozen_clock: list[float], api: ApiClient
) -> None:
    for _ in range(2):
        api.get("customers")
    assert api.get("customers").status_code == 429

    frozen_clock[0] = NOW + 20  # the next minute

    assert api.get("customers").status_code == 200


@override_settings(API_RATE_LIMIT="2/minute", CACHES=redis_cache())
def test_a_request_crossing_into_the_next_window_is_counted_once_in_the_first(
    frozen_clock: list[float], api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.api_key is not None
    api.get("customers")  # the key is now cached: the authentication counts the next ones
    api.get("customers")
    window = int(NOW // 60)
    end = (window + 1) * 60.0
    # The authentication reads the clock just before the window ends, the throttle after.
    readings = [end - 0.1]
    monkeypatch.setattr(
        ApiKeyRateThrottle,
        "timer",
        staticmethod(lambda: readings.pop(0) if readings else end + 0.1),
    )

    response = api.get("customers")

    assert_error(response, 429, "rate_limit_error")  # the third of two in the first window
    assert response["Retry-After"] == "1"  # that window has ended
    counter = f"throttle:api_key:{api.api_key.pk}:60:{{}}"
    assert caches["default"].get(counter.format(window)) == 3
    assert caches["default"].get(counter.format(window + 1)) is None


@override_settings(API_RATE_LIMIT="2/minute")
def test_each_api_key_has_its_own_budget(
    cache_backend: str, frozen_clock: list[float], api: ApiClient, merchant: Merchant
) -> None:
    for _ in range(2):
        api.get("customers")
    assert api.get("customers").status_code == 429
    key, secret = api_key_create(merchant=merchant, name="second key")
    same_merchant_other_key = ApiClient(secret, api_key=key)

    assert same_merchant_other_key.get("customers").status_code == 200
    assert same_merchant_other_key.get("customers").status_code == 200
    assert same_merchant_other_key.get("customers").status_code == 429


@override_settings(API_RATE_LIMIT="1/minute")
def test_unauthenticated_requests_and_probes_are_not_rate_limited(
    cache_backend: str, frozen_clock: list[float], anonymous_api: ApiClient, client: Client
) -> None:
    for _ in range(3):
        assert_error(anonymous_api.get("customers"), 401, "authentication_error")
        assert client.get("/health/live").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/v1/schema/").status_code == 200


@override_settings(API_RATE_LIMIT="off")
def test_the_limit_can_be_switched_off(
    cache_backend: str, frozen_clock: list[float], api: ApiClient
) -> None:
    for _ in range(5):
        assert api.get("customers").status_code == 200


@override_settings(API_RATE_LIMIT="1/minute")
def test_requests_are_served_when_the_cache_is_down(
    frozen_clock: list[float], api: ApiClient
) -> None:
    with redis_down():
        for _ in range(3):
            assert api.get("customers").status_code == 200


# Request ids ------------------------------------------------------------------------------


def test_the_clients_request_id_is_echoed_and_recorded(api: ApiClient) -> None:
    response = api.post("customers", {"name": "Ann"}, HTTP_X_REQUEST_ID="req_client_7")

    assert response.status_code == 201, response.content
    assert response["X-Client-Request-Id"] == "req_client_7"
    assert GENERATED_REQUEST_ID.match(response["X-Request-Id"])  # ours, never the client's
    row = AuditLog.objects.get(action="customer.created", object_id=response.json()["id"])
    assert (row.request_id, row.client_request_id) == (response["X-Request-Id"], "req_client_7")
    assert row.actor_type == "api_key"


def test_a_request_without_one_gets_a_generated_id_also_in_the_audit_rows(
    api: ApiClient,
) -> None:
    response = api.post("customers", {"name": "Bo"})

    request_id = response["X-Request-Id"]
    assert GENERATED_REQUEST_ID.match(request_id)
    row = AuditLog.objects.get(action="customer.created", object_id=response.json()["id"])
    assert row.request_id == request_id


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/customers", 401),  # refused by authentication
        ("/api/v1/no-such-thing", 404),  # no route
        ("/admin", 301),  # CommonMiddleware's APPEND_SLASH redirect, outside the audit one
        ("/health/live", 200),
        ("/metrics", 200),
    ],
)
def test_every_response_carries_the_request_ids(client: Client, path: str, status: int) -> None:
    response = client.get(path, headers={"X-Request-Id": "req_every_1"})

    assert response.status_code == status
    assert GENERATED_REQUEST_ID.match(response["X-Request-Id"])
    assert response["X-Client-Request-Id"] == "req_every_1"


def test_a_refused_host_still_gets_a_request_id(client: Client) -> None:
    response = client.get("/health/live", headers={"Host": "evil.example"})

    assert response.status_code == 400
    assert GENERATED_REQUEST_ID.match(response["X-Request-Id"])


# Structured logs --------------------------------------------------------------------------


@contextlib.contextmanager
def console_lines() -> Iterator[list[str]]:
    """What the configured console handler writes in the block, line by line (filled in
    when the block ends)."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    original = handler.setStream(buffer)
    lines: list[str] = []
    try:
        yield lines
    finally:
        handler.setStream(original)
        lines.extend(buffer.getvalue().splitlines())


def _records(lines: list[str]) -> list[dict[str, Any]]:
    if settings.LOG_FORMAT == "text":
        pytest.skip("LOG_FORMAT=text: the JSON format is not in use")
    return [json.loads(line) for line in lines]


@override_settings(API_RATE_LIMIT="1/minute")
def test_log_lines_carry_the_request_id_and_actor(
    frozen_clock: list[float], api: ApiClient
) -> None:
    assert api.api_key is not None
    with override_settings(CACHES=redis_cache()), console_lines() as lines:
        api.get("customers", HTTP_X_REQUEST_ID="req_logged_1")
        api.get("customers", HTTP_X_REQUEST_ID="req_logged_2")  # throttled: logs twice

    records = [r for r in _records(lines) if r.get("client_request_id") == "req_logged_2"]
    assert len({r["request_id"] for r in records}) == 1  # ours, the same on every line
    # The throttle's line, inside the request, names the caller too …
    throttle = next(r for r in records if r["logger"] == "accounts.api.throttling")
    assert throttle["level"] == "INFO"
    assert throttle["actor_type"] == "api_key"
    assert throttle["actor"] == api.api_key.public_id
    assert "time" in throttle
    # … and Django's line for the 429, written after the middleware has finished, carries
    # the request id as well.
    django_request = next(r for r in records if r["logger"] == "django.request")
    assert django_request["level"] == "WARNING"
    assert "Too Many Requests" in django_request["message"]
    assert "request" not in django_request  # no HttpRequest repr in the log


# Health ----------------------------------------------------------------------------------


def test_live_answers_without_the_database(client: Client, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_ready_when_the_database_and_redis_answer(client: Client) -> None:
    with override_settings(CACHES=redis_cache(), CELERY_TASK_ALWAYS_EAGER=False):
        response = client.get("/health/ready")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_not_ready_when_the_caches_redis_is_down(client: Client) -> None:
    port = closed_port()
    with override_settings(CACHES=redis_cache(f"redis://127.0.0.1:{port}/0")):
        response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "failed": ["redis"],
        "checks": {"database": "ok", "redis": "unavailable"},
    }
    assert str(port) not in response.content.decode()  # no addresses leak


def test_not_ready_when_the_celery_broker_is_down(client: Client) -> None:
    down = f"redis://127.0.0.1:{closed_port()}/0"
    with override_settings(
        CACHES=redis_cache(), CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=down
    ):
        response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["failed"] == ["redis"]


def test_not_ready_when_the_database_is_down(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    class DownConnection:
        def cursor(self) -> Any:
            raise OperationalError("connection refused")

    monkeypatch.setattr(core.health, "connections", {"default": DownConnection()})
    with override_settings(CACHES=redis_cache()):
        response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "failed": ["database"],
        "checks": {"database": "unavailable", "redis": "ok"},
    }


def test_the_demo_without_redis_is_ready(client: Client) -> None:
    with override_settings(CACHES=locmem_cache(), CELERY_TASK_ALWAYS_EAGER=True):
        response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "not used"}


def test_probes_need_no_api_key_and_refuse_writes(client: Client) -> None:
    assert client.get("/health/ready").status_code in {200, 503}
    assert client.post("/health/live").status_code == 405
    assert client.post("/health/ready").status_code == 405


# Metrics ---------------------------------------------------------------------------------


def test_metrics_are_prometheus_text(client: Client, api: ApiClient) -> None:
    before = prometheus.scrape(client)
    api.get("customers")
    api.get("customers/cus_missing")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    after = prometheus.parse(body)

    def added(name: str, **labels: str) -> float:
        return prometheus.value(after, name, **labels) - prometheus.value(before, name, **labels)

    # django-prometheus's names and labels, so that dashboards keep working.
    assert added(prometheus.RESPONSES, status="200", view="customer-list", method="GET") == 1
    assert added(prometheus.RESPONSES, status="404", view="customer-detail", method="GET") == 1
    assert added(prometheus.LATENCY_COUNT, view="customer-list", method="GET") == 1
    assert added(prometheus.LATENCY_SUM, view="customer-list", method="GET") > 0
    assert added(prometheus.LATENCY_BUCKET, view="customer-list", method="GET", le="+Inf") == 1
    # Only what core.metrics updates is registered: no request series that never move.
    assert set(re.findall(r"^# TYPE (django_http_\w+) (?:counter|histogram)$", body, re.M)) == {
        "django_http_responses_total_by_status_view_method_total",
        "django_http_requests_latency_seconds_by_view_method",
        "django_http_exceptions_total_by_type_total",
        "django_http_exceptions_total_by_view_total",
    }
