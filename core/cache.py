"""Direct access to the Redis behind the default cache, for the per-request counters that
must cost one round trip (rate limits, the API key cache's generation)."""

import functools
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


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
