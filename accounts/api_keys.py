"""API keys: creating, checking and revoking them.

A key is `mk_live_` + 32 random base62 characters (190 bits). Being that long and random, it
needs no slow password hash: an HMAC-SHA256 keyed with a server secret costs microseconds
and still tells an attacker who steals the table nothing.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Merchant
from audit.services import audit_log_record
from core.db import fetch_one, instance_from_row

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
            object_id=str(api_key.pk),
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
            object_id=str(api_key.pk),
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
        object_id=api_key.prefix,
        new_values={"method": method, "path": path},
        reason="a read-only API key tried to write",
    )


# Every API request runs this query, so it is written out: the ORM would spend more time
# building it than PostgreSQL spends answering it (docs/benchmarks.md).
_KEY_FIELDS = ("id", "merchant_id", "prefix", "read_only", "last_used_at")
_MERCHANT_FIELDS = ("id", "public_id", "name")
# Table and column names only; the hash is a parameter.
_LIVE_KEY_SQL = (
    "SELECT "  # noqa: S608
    + ", ".join([f"k.{name}" for name in _KEY_FIELDS] + [f"m.{name}" for name in _MERCHANT_FIELDS])
    + f" FROM {ApiKey._meta.db_table} k JOIN {Merchant._meta.db_table} m ON m.id = k.merchant_id"
    " WHERE k.secret_hash = %s AND NOT k.revoked"
)


def api_key_authenticate(secret: str) -> ApiKey | None:
    """The live key with this secret, with its merchant, or None; notes when it was last
    used."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 100:
        return None
    row = fetch_one(_LIVE_KEY_SQL, [_hash(secret)])
    if row is None:
        return None
    api_key = instance_from_row(ApiKey, _KEY_FIELDS, row[: len(_KEY_FIELDS)])
    api_key.merchant = instance_from_row(Merchant, _MERCHANT_FIELDS, row[len(_KEY_FIELDS) :])
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
