"""The one rule for an amount of money given to a service."""

from typing import Any

from core.exceptions import ValidationError

# 10^12 minor units: ten billion dollars, a trillion yen. Far below PostgreSQL's bigint, so
# no sum of amounts on a balance can overflow in practice, and no input can reach the
# database as an out-of-range number.
MAX_AMOUNT = 10**12


def validate_amount(amount: Any, *, param: str = "amount", allow_negative: bool = False) -> int:
    """`amount` as a whole number of minor units, 1 to MAX_AMOUNT (or its negative when
    `allow_negative`); anything else — zero, floats, strings, booleans — is refused."""
    if type(amount) is not int:
        raise ValidationError(f"{param} must be a whole number of minor units", param=param)
    low = -MAX_AMOUNT if allow_negative else 1
    if amount == 0 or not low <= amount <= MAX_AMOUNT:
        bounds = f"±1 to ±{MAX_AMOUNT}" if allow_negative else f"1 to {MAX_AMOUNT}"
        raise ValidationError(f"{param} must be {bounds} minor units", param=param)
    return amount
