"""ISO 4217 currencies and their minor-unit exponents, from py-moneyed (django-money's base)."""

from decimal import Decimal

import moneyed

from core.exceptions import ValidationError

# Codes ISO 4217 reserves for testing, precious metals and "no currency": not money we hold.
_NOT_MONEY = {
    "XXX",
    "XTS",
    "XAU",
    "XAG",
    "XPD",
    "XPT",
    "XBA",
    "XBB",
    "XBC",
    "XBD",
    "XDR",
    "XSU",
    "XUA",
}


def normalize_currency(code: str, *, param: str = "currency") -> str:
    """The upper-case ISO 4217 code, or a ValidationError naming `param`."""
    if not isinstance(code, str):
        raise ValidationError(f"{param} must be a string", code="invalid_currency", param=param)
    upper = code.strip().upper()
    if upper not in moneyed.CURRENCIES or upper in _NOT_MONEY:
        raise ValidationError(
            f"{param} must be a supported ISO 4217 code, e.g. USD",
            code="invalid_currency",
            param=param,
        )
    return upper


def minor_units_per_major(code: str) -> int:
    """100 for USD, 1 for JPY, 1000 for KWD."""
    return int(moneyed.get_currency(code).sub_unit)


def to_major(amount_minor: int, code: str) -> Decimal:
    return Decimal(amount_minor) / minor_units_per_major(code)


def to_money(amount_minor: int, code: str) -> moneyed.Money:
    return moneyed.Money(to_major(amount_minor, code), code)
