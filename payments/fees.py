"""The platform's fee on a payment (SPEC §3 Fees): computed here and nowhere else."""

from fractions import Fraction

from django.db import transaction

from accounts.models import Merchant
from audit.services import audit_log_record
from core.currencies import normalize_currency
from core.db import select_one
from core.exceptions import ValidationError
from payments.models import Pricing


def fee_compute(*, amount: int, percent_bps: int, fixed_fee: int) -> int:
    """`percent_bps` of `amount` plus `fixed_fee`, in minor units, rounded half to even,
    never more than `amount` (a fee never takes more than was paid)."""
    fee = round(Fraction(amount * percent_bps, 10_000) + fixed_fee)
    return min(fee, amount)


def payment_fee(*, merchant_id: int, currency: str, amount: int) -> int:
    """The fee on `amount` captured in `currency` under the merchant's pricing; 0 when the
    merchant has none for the currency."""
    # Every captured payment asks: written out (ADR 0007).
    pricing = select_one(Pricing, merchant_id=merchant_id, currency=currency)
    if pricing is None:
        return 0
    return fee_compute(amount=amount, percent_bps=pricing.percent_bps, fixed_fee=pricing.fixed_fee)


def _pricing_values(pricing: Pricing | None) -> dict[str, int]:
    if pricing is None:
        return {}
    return {"percent_bps": pricing.percent_bps, "fixed_fee": pricing.fixed_fee}


def pricing_set(*, merchant: Merchant, currency: str, percent_bps: int, fixed_fee: int) -> Pricing:
    """Set the merchant's pricing in `currency` (0 to 10,000 basis points plus a fixed fee
    in minor units), audited with the pricing it replaces. Payments captured afterwards
    pay it; those captured before keep their fee."""
    currency = normalize_currency(currency)
    if type(percent_bps) is not int or not 0 <= percent_bps <= 10_000:
        raise ValidationError(
            "percent_bps must be a whole number of basis points from 0 to 10000",
            param="percent_bps",
        )
    if type(fixed_fee) is not int or fixed_fee < 0:
        raise ValidationError(
            "fixed_fee must be a whole, non-negative number of minor units", param="fixed_fee"
        )
    with transaction.atomic():
        old = (
            Pricing.objects.select_for_update().filter(merchant=merchant, currency=currency).first()
        )
        old_values = _pricing_values(old)
        pricing = old or Pricing(merchant=merchant, currency=currency)
        pricing.percent_bps, pricing.fixed_fee = percent_bps, fixed_fee
        pricing.save()
        audit_log_record(
            action="pricing.set",
            object_type="merchant",
            object_id=merchant.public_id,
            old_values={"currency": currency, **old_values} if old_values else {},
            new_values={"currency": currency, **_pricing_values(pricing)},
        )
    return pricing
