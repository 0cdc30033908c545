"""Health probes (SPEC §4.1), outside the API: no authentication, no rate limit.

- `/health/live`: the process serves requests. Touches nothing else.
- `/health/ready`: the database answers, and so does every Redis this process uses (the
  cache's, when it is Redis, and Celery's broker, unless tasks run eagerly); 503 naming
  what failed otherwise. Details of a failure go to the log, not to the caller.
"""

import logging

import redis
from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

REDIS_CACHE_BACKEND = "django.core.cache.backends.redis.RedisCache"
# A probe is answered within a few seconds even when a dependency hangs.
REDIS_TIMEOUT_SECONDS = 2


def _response(body: dict[str, object], status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    add_never_cache_headers(response)
    return response


@require_safe
def live(request: HttpRequest) -> JsonResponse:
    return _response({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        logger.warning("readiness: the database does not answer", exc_info=True)
        return False


def redis_urls() -> list[str]:
    """The Redis servers this process depends on, each once."""
    urls: list[str] = []
    cache = settings.CACHES.get("default", {})
    if cache.get("BACKEND") == REDIS_CACHE_BACKEND:
        location = cache.get("LOCATION") or []
        urls.extend([location] if isinstance(location, str) else location)
    if not settings.CELERY_TASK_ALWAYS_EAGER and settings.CELERY_BROKER_URL:
        urls.append(settings.CELERY_BROKER_URL)
    return list(dict.fromkeys(urls))


def _redis_ok(url: str) -> bool:
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        logger.warning("readiness: Redis does not answer", exc_info=True)
        return False
    finally:
        client.close()


@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    checks = {"database": "ok" if _database_ok() else "unavailable"}
    urls = redis_urls()
    if urls:
        checks["redis"] = "ok" if all(_redis_ok(url) for url in urls) else "unavailable"
    else:
        checks["redis"] = "not used"
    failed = [name for name, result in checks.items() if result == "unavailable"]
    if failed:
        return _response({"status": "unavailable", "failed": failed, "checks": checks}, 503)
    return _response({"status": "ok", "checks": checks})
