"""The rate limit per API key (SPEC §4.1), on core.api.throttling's windows: at most
`API_RATE_LIMIT` requests per key per window."""

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.request import Request

from accounts.models import ApiKey
from core.api.throttling import (
    COUNTED_META,
    Counted,
    RateWindow,
    WindowThrottle,
    count_in_window,
)
from core.cache import RedisUnavailable, default_redis, execute

logger = logging.getLogger(__name__)


def _window(api_key: ApiKey, time: float) -> RateWindow | None:
    """An API key's window at `API_RATE_LIMIT`; None when rate limiting is off."""
    return RateWindow.counting(f"api_key:{api_key.pk}", "API_RATE_LIMIT", time)


class ApiKeyRateThrottle(WindowThrottle):
    """At most `API_RATE_LIMIT` requests per API key per window."""

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
        window = _window(api_key, cls.timer())
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
                request.META[COUNTED_META] = Counted(window, None)
            raise
        if window is not None:
            request.META[COUNTED_META] = Counted(window, int(results[2]))
        return results[0]

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        # The authentication's count stands, in its window, whatever the clock says now:
        # counting again would count a request that crossed into the next window twice,
        # and cost a second timeout when Redis hangs.
        counted: Counted | None = request.META.get(COUNTED_META)
        if counted is None:
            window = _window(api_key, self.timer())
            if window is None:
                return True
            try:
                counted = Counted(window, count_in_window(window))
            except RedisUnavailable:
                counted = Counted(window, None)
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
