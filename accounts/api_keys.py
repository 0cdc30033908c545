"""API keys: creating, checking and revoking them.

A key is `mk_live_` + 32 random base62 characters (190 bits). Being that long and random, it
needs no slow password hash: an HMAC-SHA256 keyed with a server secret costs microseconds
and still tells an attacker who steals the table nothing.
"""

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Merchant
from audit.services import audit_log_record
from core.cache import RedisUnavailable, default_redis, execute
from core.db import fetch_one, instance_from_row

logger = logging.getLogger(__name__)

KEY_PREFIX = "mk_live_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VISIBLE = len(KEY_PREFIX) + 4
# last_used_at is written at most this often per key, so reads do not each cost a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(secret: str) -> str:
    return hmac.new(
        settings.API_KEY_HASH_SECRET.encode(), secret.encode(), hashlib.sha256
    ).hexdigest()


def _key_data(api_key: ApiKey) -> dict[str, object]:
    return {
        "id": api_key.public_id,
        "prefix": api_key.prefix,
        "merchant": api_key.merchant.public_id,
        "name": api_key.name,
        "read_only": api_key.read_only,
        "revoked": api_key.revoked,
    }


def api_key_create(
    *, merchant: Merchant, name: str = "", read_only: bool = False
) -> tuple[ApiKey, str]:
    """Create a key; returns it and its secret, which is never retrievable again."""
    secret = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(32))
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            merchant=merchant,
            name=name,
            prefix=secret[:_VISIBLE],
            secret_hash=_hash(secret),
            read_only=read_only,
        )
        audit_log_record(
            action="api_key.created",
            object_type="api_key",
            object_id=api_key.public_id,
            new_values=_key_data(api_key),
        )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey, reason: str = "") -> ApiKey:
    with transaction.atomic():
        old = _key_data(api_key)
        api_key.revoked = True
        api_key.save(update_fields=["revoked"])
        audit_log_record(
            action="api_key.revoked",
            object_type="api_key",
            object_id=api_key.public_id,
            old_values=old,
            new_values=_key_data(api_key),
            reason=reason,
        )
    return api_key


def api_key_write_refused(*, api_key: ApiKey, method: str, path: str) -> None:
    """Record that a read-only key tried to write (RELIABILITY B10), in its own statement:
    the request changes nothing else."""
    audit_log_record(
        action="api_key.write_denied",
        object_type="api_key",
        object_id=api_key.public_id,
        new_values={"method": method, "path": path},
        reason="a read-only API key tried to write",
    )


# Every API request runs this query, so it is written out: the ORM would spend more time
# building it than PostgreSQL spends answering it (docs/benchmarks.md).
_KEY_FIELDS = ("id", "public_id", "merchant_id", "prefix", "read_only", "last_used_at")
# The merchant's fields the API reads (a payment its default provider): all loaded with the
# key, so that no request loads a deferred one.
_MERCHANT_FIELDS = ("id", "public_id", "name", "default_provider")
# Table and column names only; the hash is a parameter.
_LIVE_KEY_SQL = (
    "SELECT "  # noqa: S608
    + ", ".join([f"k.{name}" for name in _KEY_FIELDS] + [f"m.{name}" for name in _MERCHANT_FIELDS])
    + f" FROM {ApiKey._meta.db_table} k JOIN {Merchant._meta.db_table} m ON m.id = k.merchant_id"
    " WHERE k.secret_hash = %s AND NOT k.revoked"
)


@dataclass(frozen=True)
class _CachedKey:
    api_key: ApiKey
    generation: bytes  # of API keys, when it was read
    read_at: float  # time.monotonic()


# This process's live keys by secret hash (ADR 0008). Their ApiKey and Merchant instances
# are shared by the requests that use them: read them, never change them.
_cache: dict[str, _CachedKey] = {}
_CACHE_MAX_KEYS = 10_000
# A backstop for a change whose new generation never reached Redis (logged as an error).
_CACHE_MAX_AGE = 60.0
# The cache entry that changes whenever any API key or merchant changes.
API_KEYS_GENERATION = "api_keys:generation"


def api_key_authenticate(
    secret: str, *, read_generation: Callable[[ApiKey, str], Any] | None = None
) -> ApiKey | None:
    """The live key with this secret, with its merchant, or None; notes when it was last
    used.

    With `read_generation(api_key, name)`, which returns the cache entry `name` (in the
    caller's own Redis round trip) or raises RedisUnavailable, a key this process has read
    before is answered from memory when no key or merchant has changed since; a change
    anywhere empties the process's cache, and so does Redis being unavailable. Without it,
    or without Redis, every call reads the database."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 100:
        return None
    hashed = _hash(secret)
    if read_generation is None:
        return _used_or_none(_live_key(hashed))
    cached = _cache.get(hashed)
    if cached is not None and time.monotonic() - cached.read_at < _CACHE_MAX_AGE:
        try:
            if read_generation(cached.api_key, API_KEYS_GENERATION) == cached.generation:
                return _used(cached.api_key)
        except RedisUnavailable:
            # Entries from before an outage are not trusted after it (core.cache logs it).
            _cache.clear()
            return _used_or_none(_live_key(hashed))
        _cache.clear()
    # The generation before the row: a change committed in between makes it stale at once.
    generation = _current_generation()
    api_key = _live_key(hashed)
    if api_key is not None and generation is not None:
        if len(_cache) >= _CACHE_MAX_KEYS:
            _cache.clear()
        _cache[hashed] = _CachedKey(api_key, generation, time.monotonic())
    return _used_or_none(api_key)


def _live_key(hashed: str) -> ApiKey | None:
    row = fetch_one(_LIVE_KEY_SQL, [hashed])
    if row is None:
        return None
    api_key = instance_from_row(ApiKey, _KEY_FIELDS, row[: len(_KEY_FIELDS)])
    api_key.merchant = instance_from_row(Merchant, _MERCHANT_FIELDS, row[len(_KEY_FIELDS) :])
    return api_key


def _used(api_key: ApiKey) -> ApiKey:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def _used_or_none(api_key: ApiKey | None) -> ApiKey | None:
    return None if api_key is None else _used(api_key)


def _current_generation() -> bytes | None:
    """The generation of API keys (made when Redis has none), or None without Redis or
    when it is unavailable, which also empties the cache, as a failed check does."""
    redis = default_redis()
    if redis is None:
        return None
    client, backend = redis
    name = backend.make_key(API_KEYS_GENERATION)
    pipeline = client.pipeline(transaction=False)
    pipeline.set(name, secrets.token_hex(8), nx=True)
    pipeline.get(name)
    try:
        return execute(pipeline)[1]
    except RedisUnavailable:
        _cache.clear()
        return None


def api_keys_changed(**kwargs: Any) -> None:
    """A key or merchant changed (the post_save and post_delete receiver of both): every
    process's cached keys are stale. A new generation now, and again once the change
    commits, as a request in between may have cached the row as it was."""
    if kwargs.get("created"):
        return  # a new row: no process can have cached it
    _new_generation()
    transaction.on_commit(_new_generation)


def _new_generation() -> None:
    redis = default_redis()
    if redis is None:
        return
    client, backend = redis
    pipeline = client.pipeline(transaction=False)
    pipeline.set(backend.make_key(API_KEYS_GENERATION), secrets.token_hex(8))
    try:
        # Tried even while the requests skip Redis: a revocation must try to announce itself.
        execute(pipeline, during_back_off=True)
    except RedisUnavailable:
        logger.error(
            "API key change not announced: the cache is unavailable; workers that cached a "
            "changed key use it for up to %d s",
            _CACHE_MAX_AGE,
            exc_info=True,
        )
