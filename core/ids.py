"""Public ids: an opaque type prefix and 22 random base62 characters (SPEC §4.1)."""

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LENGTH = 22  # 22 base62 digits carry 128 random bits.
PUBLIC_ID_MAX_LENGTH = 32


def new_public_id(prefix: str) -> str:
    value = int.from_bytes(secrets.token_bytes(16), "big")
    chars = []
    for _ in range(_RANDOM_LENGTH):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(chars)}"


def new_merchant_id() -> str:
    return new_public_id("mer")


def new_customer_id() -> str:
    return new_public_id("cus")


def new_account_id() -> str:
    return new_public_id("acct")


def new_hold_id() -> str:
    return new_public_id("hold")


def new_ledger_transaction_id() -> str:
    return new_public_id("ltx")


def new_transfer_id() -> str:
    return new_public_id("tr")


def new_event_id() -> str:
    return new_public_id("evt")


def new_fx_quote_id() -> str:
    return new_public_id("fxq")


def new_api_key_id() -> str:
    return new_public_id("key")


def new_payment_id() -> str:
    return new_public_id("pay")


def new_payment_attempt_id() -> str:
    return new_public_id("att")


def new_refund_id() -> str:
    return new_public_id("re")


def new_payout_id() -> str:
    return new_public_id("po")
