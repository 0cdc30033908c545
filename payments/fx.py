"""Foreign exchange: the platform's reference rates, merchants' quotes, and conversion.

Rates are never the caller's (SPEC §3, Multi-currency). Finance staff set a reference rate
per currency pair (`fx_rate_set`: the admin, `manage.py set_fx_rate`); a merchant asks for a
quote (`fx_quote_create`), which takes the newest reference rate of the pair, less the
merchant's spread, and expires after FX_QUOTE_TTL_SECONDS; a cross-currency transfer names
the quote and converts at its rate (`fx_quote_check`, `fx_convert`). docs/payments.md.
"""

from datetime import timedelta
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

from django.conf import settings
from django.db import transaction

from accounts.models import Account, Merchant
from audit.context import current_context
from audit.services import audit_log_record
from core.currencies import minor_units_per_major, normalize_currency
from core.db import database_now
from core.exceptions import ValidationError
from payments.models import FxQuote, FxRate

# What FxRate.rate and FxQuote.rate (NUMERIC(24, 12)) store: below 10^12, at most 12
# decimal places.
FX_RATE_DECIMAL_PLACES = 12
FX_RATE_LIMIT = Decimal(10) ** 12
_RATE_QUANTUM = Decimal(1).scaleb(-FX_RATE_DECIMAL_PLACES)
_BASIS_POINTS = 10_000
# Enough digits that every product of an amount (13 digits), a rate (24) and a ratio of
# minor units is exact, whatever the thread's own decimal context says.
_FX_CONTEXT = Context(
    prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)


def fx_convert(
    *, amount: int, source_currency: str, destination_currency: str, rate: Decimal
) -> int:
    """`amount` minor units of the source currency in minor units of the destination at
    `rate` (destination major units per source major unit), rounded down: the fraction
    of a minor unit stays with the platform's FX account, so that many small transfers
    never receive more than one large one, nor a round trip more than it started with."""
    with localcontext(_FX_CONTEXT):
        exact = (
            Decimal(amount)
            * rate
            * minor_units_per_major(destination_currency)
            / minor_units_per_major(source_currency)
        )
        return int(exact.quantize(Decimal(1), rounding=ROUND_DOWN))


def rate_text(rate: Decimal) -> str:
    """A rate as the API and the audit trail show it: plain digits, no trailing zeros
    (`0.92`, `150`), the same whether it was just computed or read back from its column."""
    return format(rate.normalize(), "f")


def _currency_pair(source_currency: str, destination_currency: str) -> tuple[str, str]:
    pair = (
        normalize_currency(source_currency, param="source_currency"),
        normalize_currency(destination_currency, param="destination_currency"),
    )
    if pair[0] == pair[1]:
        raise ValidationError(
            f"a currency pair needs two different currencies, not {pair[0]} twice",
            param="destination_currency",
        )
    return pair


def _validate_rate(rate: object) -> Decimal:
    """A positive Decimal that the rate columns store exactly, or a ValidationError."""
    if isinstance(rate, str):
        try:
            rate = Decimal(rate.strip())
        except InvalidOperation:
            rate = None
    if not (isinstance(rate, Decimal) and rate.is_finite() and rate > 0):
        raise ValidationError("rate must be a positive decimal number", param="rate")
    with localcontext(_FX_CONTEXT):
        within = rate < FX_RATE_LIMIT and rate == rate.quantize(_RATE_QUANTUM)
    if not within:
        raise ValidationError(
            f"rate must be below 10^12 with at most {FX_RATE_DECIMAL_PLACES} decimal places",
            param="rate",
        )
    return rate


def fx_rate_validate(
    *, source_currency: str, destination_currency: str, rate: object
) -> tuple[str, str, Decimal]:
    """The pair (upper case) and the rate `fx_rate_set` would store, or a ValidationError
    naming the input at fault (for a form to show before saving)."""
    source, destination = _currency_pair(source_currency, destination_currency)
    return source, destination, _validate_rate(rate)


def fx_rate_set(*, source_currency: str, destination_currency: str, rate: Decimal | str) -> FxRate:
    """Set the platform's reference rate of a pair (`rate` destination major units per
    source major unit), audited with the rate it replaces; quotes take it from now on.
    Each direction of a pair is a rate of its own."""
    source, destination, rate = fx_rate_validate(
        source_currency=source_currency, destination_currency=destination_currency, rate=rate
    )
    with transaction.atomic():
        inverse = fx_rate_current(source_currency=destination, destination_currency=source)
        with localcontext(_FX_CONTEXT):
            round_trip = rate * inverse.rate if inverse is not None else Decimal(0)
        if inverse is not None and round_trip > 1:
            # Converting there and back would pay more than it took: free money at the
            # platform's expense (a typo, or the two directions set the wrong way round).
            raise ValidationError(
                f"{source}/{destination} at {rate_text(rate)} and {destination}/{source} at "
                f"{rate_text(inverse.rate)} multiply to {rate_text(round_trip)}, more than 1: "
                "a round trip would gain money",
                code="fx_rate_arbitrage",
                param="rate",
            )
        previous = fx_rate_current(source_currency=source, destination_currency=destination)
        fx_rate = FxRate.objects.create(
            source_currency=source,
            destination_currency=destination,
            rate=rate,
            set_by=current_context().actor,
        )
        audit_log_record(
            action="fx_rate.set",
            object_type="fx_rate",
            object_id=f"{source}/{destination}",
            old_values={"rate": rate_text(previous.rate)} if previous is not None else {},
            new_values={"rate": rate_text(rate), "set_at": fx_rate.created_at},
        )
    return fx_rate


def fx_rate_current(*, source_currency: str, destination_currency: str) -> FxRate | None:
    """The reference rate of the pair in force: the newest one set, or None."""
    return (
        FxRate.objects.filter(
            source_currency=source_currency, destination_currency=destination_currency
        )
        .order_by("-id")
        .first()
    )


def fx_quote_create(
    *, merchant: Merchant, source_currency: str, destination_currency: str
) -> FxQuote:
    """A quote for the merchant: the pair's reference rate less the merchant's spread
    (rounded down to 12 decimal places, in the platform's favour), good until
    FX_QUOTE_TTL_SECONDS from now. No reference rate for the pair is a ValidationError."""
    source, destination = _currency_pair(source_currency, destination_currency)
    reference = fx_rate_current(source_currency=source, destination_currency=destination)
    if reference is None:
        raise ValidationError(
            f"there is no reference rate for {source}/{destination}",
            code="fx_rate_unavailable",
            param="destination_currency",
        )
    spread = merchant.fx_spread_bps
    with localcontext(_FX_CONTEXT):
        rate = (reference.rate * (_BASIS_POINTS - spread) / _BASIS_POINTS).quantize(
            _RATE_QUANTUM, rounding=ROUND_DOWN
        )
    if rate <= 0:
        raise ValidationError(
            f"the rate for {source}/{destination} rounds to zero after the spread",
            code="fx_rate_unavailable",
            param="destination_currency",
        )
    with transaction.atomic():
        quote = FxQuote.objects.create(
            merchant=merchant,
            source_currency=source,
            destination_currency=destination,
            reference_rate=reference,
            spread_bps=spread,
            rate=rate,
            expires_at=database_now() + timedelta(seconds=settings.FX_QUOTE_TTL_SECONDS),
        )
        audit_log_record(
            action="fx_quote.created",
            object_type="fx_quote",
            object_id=quote.public_id,
            new_values={
                "pair": f"{source}/{destination}",
                "reference_rate": rate_text(reference.rate),
                "spread_bps": spread,
                "rate": rate_text(rate),
                "expires_at": quote.expires_at,
            },
        )
    return quote


def fx_quote_check(
    *, quote: FxQuote, merchant: Merchant, source: Account, destination: Account
) -> Decimal:
    """The rate of `quote` for a transfer from `source` to `destination`, or a
    ValidationError naming `fx_quote` when the quote is another merchant's, for another
    pair, or expired."""
    if quote.merchant_id != merchant.pk:
        raise ValidationError("No such fx_quote.", code="fx_quote_missing", param="fx_quote")
    pair = (source.currency, destination.currency)
    if (quote.source_currency, quote.destination_currency) != pair:
        raise ValidationError(
            f"fx_quote {quote.public_id} is for {quote.source_currency}/"
            f"{quote.destination_currency}, not {pair[0]}/{pair[1]}",
            code="fx_quote_mismatch",
            param="fx_quote",
        )
    if quote.expires_at <= database_now():  # the clock money is timed by, not this server's
        raise ValidationError(
            f"fx_quote {quote.public_id} expired at {quote.expires_at.isoformat()}; "
            "ask for a new one",
            code="fx_quote_expired",
            param="fx_quote",
        )
    return quote.rate
