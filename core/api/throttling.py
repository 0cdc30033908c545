"""Rate limiting per API key (SPEC §4.1: 429 `rate_limit_error` with `Retry-After`).

A fixed window per key: one counter per key and window in the default cache. With Redis
that is one round trip per request (`SET NX EX` then `INCR`, pipelined; Django's own
`cache.incr` would cost two); with the demo's per-process local memory cache, `cache.add`
and `cache.incr`. O(1) per request either way, unlike DRF's `SimpleRateThrottle`, which
keeps and rewrites a list of every request's time.

The rate is the setting `API_RATE_LIMIT`, `N/second`, `N/minute`, `N/hour` or `N/day` (as
in DRF, only the period's first letter counts); empty, `off` or `none` switches limiting
off. Requests without an API key are not counted here: authentication refuses them first.
"""

import functools
import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey

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


@functools.lru_cache(maxsize=16)
def _redis_client(cache_client: Any) -> Any:
    """A Redis client on the cache's connection pool, made once: Django's cache builds a
    new one for every call, which costs more than the round trip."""
    return cache_client.get_client(write=True)


class ApiKeyRateThrottle(BaseThrottle):
    """At most `API_RATE_LIMIT` requests per API key per window; `wait()` is the time
    left in the window, which the error handler sends as `Retry-After`."""

    timer = staticmethod(time.time)
    # Counters outlive their window by this much, so that a request that read the clock
    # just before the window ended still finds its counter (see `allow_request`).
    expiry_margin = 2

    def __init__(self) -> None:
        self.window_end: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        rate = parse_rate(settings.API_RATE_LIMIT)
        if rate is None or not isinstance(api_key, ApiKey):
            return True
        limit, duration = rate
        now = self.timer()
        window = int(now // duration)
        self.window_end = (window + 1) * duration
        key = f"throttle:api_key:{api_key.pk}:{duration}:{window}"
        try:
            count = self._count(key, timeout=duration + self.expiry_margin)
        except Exception:
            # The cache (Redis) is down: serve the request unlimited rather than fail it;
            # /health/ready reports Redis as unavailable meanwhile.
            logger.warning("rate limit not checked: the cache is unavailable", exc_info=True)
            return True
        if count > limit:
            logger.info(
                "rate limit exceeded for API key %s: %d requests this window of %d s",
                api_key.prefix,
                count,
                duration,
            )
            return False
        return True

    @staticmethod
    def _count(key: str, *, timeout: int) -> int:
        """This request's number in its window: one atomic increment, plus an atomic
        create (with expiry) for the window's first request."""
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            redis_key = backend.make_and_validate_key(key)
            client = _redis_client(backend._cache)  # type: ignore[attr-defined]
            pipeline = client.pipeline(transaction=False)
            pipeline.set(redis_key, 0, ex=timeout, nx=True)
            pipeline.incr(redis_key)
            return int(pipeline.execute()[1])
        try:
            return int(cache.incr(key))
        except ValueError:  # no counter yet: this is the window's first request
            if cache.add(key, 1, timeout=timeout):
                return 1
            return int(cache.incr(key))  # another request created it meanwhile

    def wait(self) -> float | None:
        """Whole seconds until the window ends (at least 1)."""
        if self.window_end is None:
            return None
        return float(max(1, math.ceil(self.window_end - self.timer())))
