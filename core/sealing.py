"""Small tokens that the client holds but can neither read nor forge (pagination cursors).

Encrypt-then-MAC from Django's own HMAC (`salted_hmac`, keyed with SECRET_KEY): a random
nonce, the text XORed with HMAC-SHA256(nonce) as key stream, then a 128-bit HMAC-SHA256 tag
over nonce and ciphertext. Each key is derived from the token's `purpose`, so a token sealed
for one purpose (one list of one merchant) does not open for another. Django has no cipher
of its own, and a dependency for 11-byte cursors would be more than it is worth.
"""

import base64
import binascii
import secrets

from django.utils.crypto import constant_time_compare, salted_hmac

_NONCE_BYTES = 12
_TAG_BYTES = 16
MAX_PLAIN_BYTES = 32  # one SHA-256 block of key stream


def _key_stream(purpose: str, nonce: bytes) -> bytes:
    return salted_hmac(f"moneta.sealing.stream:{purpose}", nonce, algorithm="sha256").digest()


def _tag(purpose: str, sealed: bytes) -> bytes:
    digest = salted_hmac(f"moneta.sealing.tag:{purpose}", sealed, algorithm="sha256").digest()
    return digest[:_TAG_BYTES]


def seal(plain: bytes, *, purpose: str) -> str:
    """`plain` (at most 32 bytes) encrypted and authenticated for `purpose`, as URL-safe
    base64 without padding."""
    if len(plain) > MAX_PLAIN_BYTES:
        raise ValueError(f"seal() takes at most {MAX_PLAIN_BYTES} bytes")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    cipher = bytes(a ^ b for a, b in zip(plain, _key_stream(purpose, nonce), strict=False))
    sealed = nonce + cipher
    return base64.urlsafe_b64encode(sealed + _tag(purpose, sealed)).decode().rstrip("=")


def unseal(token: str, *, purpose: str) -> bytes | None:
    """The bytes `seal(…, purpose=purpose)` was given, or None for anything else: a token
    altered, made up, or sealed for another purpose."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):  # not base64, or not ASCII
        return None
    sealed, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if len(sealed) < _NONCE_BYTES or not constant_time_compare(tag, _tag(purpose, sealed)):
        return None
    nonce, cipher = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    return bytes(a ^ b for a, b in zip(cipher, _key_stream(purpose, nonce), strict=False))
