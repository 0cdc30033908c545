"""Small tokens that the client holds but can neither read nor forge (pagination cursors).

Fernet (`cryptography`): AES-128-CBC and HMAC-SHA256, encrypt-then-MAC, a well-reviewed
construction rather than one of our own. Each token's key is derived from SECRET_KEY and
the token's `purpose` (Django's `salted_hmac`), so a token sealed for one purpose (one list
of one merchant) does not open for another, and changing SECRET_KEY invalidates them all.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.utils.crypto import salted_hmac

# A cursor's position is a few bytes; anything much larger is not what this is for.
MAX_PLAIN_BYTES = 64


@functools.lru_cache(maxsize=1024)
def _fernet(secret_key: str, purpose: str) -> Fernet:
    digest = salted_hmac(
        f"moneta.sealing:{purpose}", b"", secret=secret_key, algorithm="sha256"
    ).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _for(purpose: str) -> Fernet:
    return _fernet(settings.SECRET_KEY, purpose)


def seal(plain: bytes, *, purpose: str) -> str:
    """`plain` (at most MAX_PLAIN_BYTES) encrypted and authenticated for `purpose`, as
    URL-safe base64 without padding."""
    if len(plain) > MAX_PLAIN_BYTES:
        raise ValueError(f"seal() takes at most {MAX_PLAIN_BYTES} bytes")
    return _for(purpose).encrypt(plain).decode().rstrip("=")


def unseal(token: str, *, purpose: str) -> bytes | None:
    """The bytes `seal(…, purpose=purpose)` was given, or None for anything else: a token
    altered, made up, or sealed for another purpose or under another SECRET_KEY."""
    if not token.isascii() or len(token) > 4 * MAX_PLAIN_BYTES:
        return None
    try:
        return _for(purpose).decrypt(token + "=" * (-len(token) % 4))
    except (InvalidToken, ValueError, TypeError):
        return None
