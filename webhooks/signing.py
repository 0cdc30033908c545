"""Standard Webhooks signatures: `v1,` + base64 of HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret's decoded bytes."""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
_SECRET_BYTES = 32


def secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def signature(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(
    secrets: Sequence[str], *, message_id: str, timestamp: int, body: bytes
) -> str:
    """`webhook-signature`: one signature per secret, space separated (a rotation's grace
    period signs with both)."""
    return " ".join(
        signature(secret, message_id=message_id, timestamp=timestamp, body=body)
        for secret in secrets
    )
