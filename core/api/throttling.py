"""Rate limiting per API key (SPEC §4.1: 429 `rate_limit_error` with `Retry-After`).

A fixed window per key: one counter per key and window in the default cache. With Redis
that is one round trip per request (`SET NX EX` then `INCR`, pipelined; Django's own
`cache.incr` would cost two), which the authentication takes for the throttle when it
also needs the API key cache's generation (`count_and_read`); with the demo's
per-process local memory cache, `cache.add` and `cache.incr`. O(1) per request either
way, unlike DRF's `SimpleRateThrottle`, which keeps and rewrites a list of every request's
time.

The rate is the setting `API_RATE_LIMIT`, `N/second`, `N/minute`, `N/hour` or `N/day` (as
in DRF, only the period's first letter counts); empty, `off` or `none` switches limiting
off. Requests without an API key are not counted here: authentication refuses them first.
While Redis does not answer, requests are served unlimited; after a failed round trip
`core.cache` skips Redis for a few seconds, so that an outage does not cost every request
a timeout.
"""

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey
from core.cache import RedisUnavailable, default_redis, execute

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_OFF = {"", "off", "none"}


@functools.lru_cache(maxsize=8)
def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """`"100/second"` → `(100, 1)`: requests allowed per window, window in seconds.
    None when limiting is off."""
    text = (rate or "").strip().lower()
    if text in _OFF:
        return None
    count, _, period = text.partition("/")
    period = period.strip()
    try:
        requests = int(count)
        seconds = _PERIODS[period[:1]]
    except (ValueError, KeyError):
        raise ImproperlyConfigured(
            f"API_RATE_LIMIT must look like 100/second, 6000/minute, 10000/hour or "
            f"100000/day (or be off), not {rate!r}"
        ) from None
    if requests < 1:
        raise ImproperlyConfigured(f"API_RATE_LIMIT must allow at least 1 request: {rate!r}")
    return requests, seconds


@dataclass(frozen=True)
class RateWindow:
    """An API key's counter for the window `time` falls in."""

    limit: int
    seconds: int
    key: str  # before the cache's prefix
    timeout: int
    end: float

    @classmethod
    def of(cls, api_key_pk: int, time: float) -> "RateWindow | None":
        """None when rate limiting is off."""
        rate = parse_rate(settings.API_RATE_LIMIT)
        if rate is None:
            return None
        limit, duration = rate
        window = int(time // duration)
        return cls(
            limit=limit,
            seconds=duration,
            key=f"throttle:api_key:{api_key_pk}:{duration}:{window}",
            # Counters outlive their window by this much, so that a request that read the
            # clock just before the window ended still finds its counter.
            timeout=duration + 2,
            end=(window + 1) * duration,
        )


@dataclass(frozen=True)
class _Counted:
    """The count the authentication took for the throttle (see `count_and_read`)."""

    window: RateWindow
    count: int | None  # None: Redis did not answer


# Where the authentication leaves it.
_COUNTED_META = "moneta.rate_count"


class ApiKeyRateThrottle(BaseThrottle):
    """At most `API_RATE_LIMIT` requests per API key per window; `wait()` is the time
    left in the window, which the error handler sends as `Retry-After`."""

    timer = staticmethod(time.time)

    def __init__(self) -> None:
        self.window_end: float | None = None

    @classmethod
    def count_and_read(cls, request: HttpRequest, api_key: ApiKey, name: str) -> Any:
        """Count the request against `api_key`'s rate limit now, in the same Redis round
        trip as reading the cache entry `name` (the API key cache's generation), and return
        that entry; the throttle then uses the count, in this window. Raises
        RedisUnavailable when Redis does not answer or is skipped (core.cache's back-off);
        the throttle then lets the request through, as below."""
        redis = default_redis()
        if redis is None:
            raise ImproperlyConfigured("count_and_read needs the default cache on Redis")
        client, backend = redis
        window = RateWindow.of(api_key.pk, cls.timer())
        pipeline = client.pipeline(transaction=False)
        pipeline.get(backend.make_key(name))
        if window is not None:
            counter = backend.make_key(window.key)
            pipeline.set(counter, 0, ex=window.timeout, nx=True)
            pipeline.incr(counter)
        try:
            results = execute(pipeline)
        except RedisUnavailable:
            if window is not None:
                request.META[_COUNTED_META] = _Counted(window, None)
            raise
        if window is not None:
            request.META[_COUNTED_META] = _Counted(window, int(results[2]))
        return results[0]

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        # The authentication's count stands, in its window, whatever the clock says now:
        # counting again would count a request that crossed into the next window twice,
        # and cost a second timeout when Redis hangs.
        counted: _Counted | None = request.META.get(_COUNTED_META)
        if counted is None:
            window = RateWindow.of(api_key.pk, self.timer())
            if window is None:
                return True
            try:
                counted = _Counted(window, self._count(window))
            except RedisUnavailable:
                counted = _Counted(window, None)
        if counted.count is None:
            # Redis is down (core.cache logs it once per back-off): serve the request
            # unlimited rather than fail it; /health/ready reports Redis unavailable.
            return True
        self.window_end = counted.window.end
        if counted.count > counted.window.limit:
            logger.info(
                "rate limit exceeded for API key %s: %d requests this window of %d s",
                api_key.public_id,
                counted.count,
                counted.window.seconds,
            )
            return False
        return True

    @staticmethod
    def _count(window: RateWindow) -> int:
        """This request's number in its window: one atomic increment, plus an atomic
        create (with expiry) for the window's first request."""
        redis = default_redis()
        if redis is not None:
            client, backend = redis
            counter = backend.make_key(window.key)
            pipeline = client.pipeline(transaction=False)
            pipeline.set(counter, 0, ex=window.timeout, nx=True)
            pipeline.incr(counter)
            return int(execute(pipeline)[1])
        try:
            return int(cache.incr(window.key))
        except ValueError:  # no counter yet: this is the window's first request
            if cache.add(window.key, 1, timeout=window.timeout):
                return 1
            return int(cache.incr(window.key))  # another request created it meanwhile

    def wait(self) -> float | None:
        """Whole seconds until the window ends (at least 1)."""
        if self.window_end is None:
            return None
        return float(max(1, math.ceil(self.window_end - self.timer())))
