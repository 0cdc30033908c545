"""Rate limiting (SPEC §4.1: 429 `rate_limit_error` with `Retry-After`): fixed windows and
their counters, and the limit per client address. The limit per API key,
`accounts.api.throttling.ApiKeyRateThrottle`, is built on these.

A fixed window per key: one counter per key and window in the default cache. With Redis
that is one round trip per request (`SET NX EX` then `INCR`, pipelined; Django's own
`cache.incr` would cost two), which the authentication takes for the throttle when it
also needs the API key cache's generation (`count_and_read`); with the demo's
per-process local memory cache, `cache.add` and `cache.incr`. O(1) per request either
way, unlike DRF's `SimpleRateThrottle`, which keeps and rewrites a list of every request's
time.

The rate is the setting `API_RATE_LIMIT`, `N/second`, `N/minute`, `N/hour` or `N/day` (as
in DRF, only the period's first letter counts); empty, `off` or `none` switches limiting
off. Requests without a valid API key (none, an invalid one, the schema, the docs) are
counted per client address instead, at `API_ANONYMOUS_RATE_LIMIT` (`AnonymousRateThrottle`),
so that neither anonymous work nor a flood of guessed keys is unbounded.
While Redis does not answer, requests are served unlimited; after a failed round trip
`core.cache` skips Redis for a few seconds, so that an outage does not cost every request
a timeout.
"""

import functools
import ipaddress
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

from core.api.principal import Principal
from core.cache import RedisUnavailable, default_redis, execute
from core.http import client_ip

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_OFF = {"", "off", "none"}


@functools.lru_cache(maxsize=8)
def parse_rate(rate: str | None, setting: str = "API_RATE_LIMIT") -> tuple[int, int] | None:
    """`"100/second"` → `(100, 1)`: requests allowed per window, window in seconds.
    None when limiting is off. `setting` names the setting in the error."""
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
            f"{setting} must look like 100/second, 6000/minute, 10000/hour or "
            f"100000/day (or be off), not {rate!r}"
        ) from None
    if requests < 1:
        raise ImproperlyConfigured(f"{setting} must allow at least 1 request: {rate!r}")
    return requests, seconds


@dataclass(frozen=True)
class RateWindow:
    """A counter (an API key's, a client address's) for the window `time` falls in."""

    limit: int
    seconds: int
    key: str  # before the cache's prefix
    timeout: int
    end: float

    @classmethod
    def counting(cls, subject: str, setting: str, time: float) -> "RateWindow | None":
        """The window of `subject`'s counter at the rate of the setting `setting`; None
        when that rate is off."""
        rate = parse_rate(getattr(settings, setting), setting)
        if rate is None:
            return None
        limit, duration = rate
        window = int(time // duration)
        return cls(
            limit=limit,
            seconds=duration,
            key=f"throttle:{subject}:{duration}:{window}",
            # Counters outlive their window by this much, so that a request that read the
            # clock just before the window ended still finds its counter.
            timeout=duration + 2,
            end=(window + 1) * duration,
        )


@dataclass(frozen=True)
class Counted:
    """The count the authentication took for the throttle, in the same round trip as its
    own read (accounts.api.throttling.ApiKeyRateThrottle.count_and_read)."""

    window: RateWindow
    count: int | None  # None: Redis did not answer


# Where the authentication leaves it.
COUNTED_META = "moneta.rate_count"


def count_in_window(window: RateWindow) -> int:
    """This request's number in its window: one atomic increment, plus an atomic create
    (with expiry) for the window's first request. Raises RedisUnavailable when Redis does
    not answer."""
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


class WindowThrottle(BaseThrottle):
    """`wait()` is the time left in the window of the request refused, which the error
    handler sends as `Retry-After`."""

    timer = staticmethod(time.time)

    def __init__(self) -> None:
        self.window_end: float | None = None

    def wait(self) -> float | None:
        """Whole seconds until the window ends (at least 1)."""
        if self.window_end is None:
            return None
        return float(max(1, math.ceil(self.window_end - self.timer())))


def client_address(request: HttpRequest) -> str:
    """Who an anonymous request is counted against: its REMOTE_ADDR, or for IPv6 its /64
    (one host commonly holds a whole /64 and could otherwise walk through it)."""
    address = client_ip(request)
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"
    return str(address)


class AnonymousRateThrottle(WindowThrottle):
    """At most `API_ANONYMOUS_RATE_LIMIT` requests per client address per window from
    callers without a valid API key: no key, an invalid one (see
    `core.api.views.MerchantScopedViewSet.perform_authentication`), the schema, the docs and
    the index. Requests with a valid key are left to ApiKeyRateThrottle."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if isinstance(request.user, Principal):
            return True
        address = client_address(request)
        window = RateWindow.counting(
            f"anonymous:{address}", "API_ANONYMOUS_RATE_LIMIT", self.timer()
        )
        if window is None:
            return True
        try:
            count = count_in_window(window)
        except RedisUnavailable:  # served unlimited, as for API keys
            return True
        self.window_end = window.end
        if count > window.limit:
            logger.info(
                "anonymous rate limit exceeded for %s: %d requests this window of %d s",
                address,
                count,
                window.seconds,
            )
            return False
        return True
