"""Transfers: money moved between two accounts of one merchant."""

from collections.abc import Mapping
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import Account, AccountKind, Merchant, SystemPurpose
from accounts.system import system_account_get
from audit.services import audit_log_build, event_build
from core.amounts import MAX_AMOUNT, validate_amount
from core.currencies import minor_units_per_major
from core.db import insert_rows_together, retry_on_conflict
from core.exceptions import Declined, ValidationError
from core.validation import max_length_of, validate_metadata, validate_text
from ledger.models import LedgerTransaction, LedgerTransactionKind
from ledger.services import Leg, ledger_transaction_post
from payments.models import Transfer, TransferStatus
from payments.representations import transfer_data

# What Transfer.fx_rate (NUMERIC(24, 12)) stores: below 10^12, at most 12 decimal places.
FX_RATE_DECIMAL_PLACES = 12
FX_RATE_LIMIT = Decimal(10) ** 12
# Enough digits that every product of an amount (13 digits), a rate (24) and a ratio of
# minor units is exact, whatever the thread's own decimal context says.
_FX_CONTEXT = Context(
    prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)


def fx_convert(
    *, amount: int, source_currency: str, destination_currency: str, rate: Decimal
) -> int:
    """`amount` minor units of the source currency in minor units of the destination at
    `rate` (destination major units per source major unit), rounded half to even."""
    with localcontext(_FX_CONTEXT):
        exact = (
            Decimal(amount)
            * rate
            * minor_units_per_major(destination_currency)
            / minor_units_per_major(source_currency)
        )
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _validate_fx_rate(fx_rate: object) -> Decimal:
    """A positive Decimal that Transfer.fx_rate stores exactly, or a ValidationError."""
    if not (isinstance(fx_rate, Decimal) and fx_rate.is_finite() and fx_rate > 0):
        raise ValidationError("fx_rate must be a positive decimal", param="fx_rate")
    with localcontext(_FX_CONTEXT):
        within = fx_rate < FX_RATE_LIMIT and fx_rate == fx_rate.quantize(
            Decimal(1).scaleb(-FX_RATE_DECIMAL_PLACES)
        )
    if not within:
        raise ValidationError(
            f"fx_rate must be below 10^12 with at most {FX_RATE_DECIMAL_PLACES} decimal places",
            param="fx_rate",
        )
    return fx_rate


def _validate_transfer(
    *,
    merchant: Merchant,
    source: Account,
    destination: Account,
    amount: int,
    fx_rate: Decimal | None,
    description: str,
    metadata: Mapping[str, str] | None,
) -> tuple[int, dict[str, str]]:
    """Refuse a malformed transfer before anything is written; return the amount the
    destination receives and the metadata to store."""
    validate_amount(amount)
    validate_text(
        description, param="description", max_length=max_length_of(Transfer, "description")
    )
    metadata = validate_metadata(metadata)
    for param, account in (("source_account", source), ("destination_account", destination)):
        if account.kind != AccountKind.WALLET or account.merchant_id != merchant.pk:
            raise ValidationError("no such account", code="resource_missing", param=param)
    if source.pk == destination.pk:
        raise ValidationError(
            "source and destination must be different accounts", param="destination_account"
        )
    if fx_rate is None:
        if source.currency != destination.currency:
            raise ValidationError(
                "accounts are in different currencies; a cross-currency transfer needs fx_rate",
                code="currency_mismatch",
                param="destination_account",
            )
        return amount, metadata
    if source.currency == destination.currency:
        raise ValidationError("fx_rate is only for cross-currency transfers", param="fx_rate")
    received = fx_convert(
        amount=amount,
        source_currency=source.currency,
        destination_currency=destination.currency,
        rate=_validate_fx_rate(fx_rate),
    )
    if received <= 0:
        raise ValidationError("the converted amount rounds to zero", param="amount")
    if received > MAX_AMOUNT:
        raise ValidationError(
            f"the converted amount exceeds the maximum of {MAX_AMOUNT} minor units",
            param="amount",
        )
    return received, metadata


def _transfer_legs(transfer: Transfer) -> list[Leg]:
    source, destination = transfer.source_account, transfer.destination_account
    if transfer.fx_rate is None:
        return [
            Leg(account=source, amount=-transfer.amount),
            Leg(account=destination, amount=transfer.amount),
        ]
    # Each currency balances on its own through the platform's FX accounts.
    fx_source = system_account_get(currency=source.currency, purpose=SystemPurpose.FX)
    fx_destination = system_account_get(currency=destination.currency, purpose=SystemPurpose.FX)
    return [
        Leg(account=source, amount=-transfer.amount),
        Leg(account=fx_source, amount=transfer.amount),
        Leg(account=fx_destination, amount=-transfer.destination_amount),
        Leg(account=destination, amount=transfer.destination_amount),
    ]


def _transfer_rows(transfer: Transfer) -> list[Model]:
    """The transfer in its final state, its event and its audit row, unsaved, to insert
    together. The transfer's time is stamped first, so that its event and audit row carry
    the time it is stored with."""
    transfer.created_at = timezone.now()
    data = transfer_data(transfer)
    return [
        transfer,
        event_build(
            merchant_id=transfer.merchant_id,
            type=f"transfer.{transfer.status}",
            object_type="transfer",
            object_id=transfer.public_id,
            data=data,
        ),
        audit_log_build(
            action=f"transfer.{transfer.status}",
            object_type="transfer",
            object_id=transfer.public_id,
            new_values=data,
        ),
    ]


@retry_on_conflict
def transfer_create(
    *,
    merchant: Merchant,
    source: Account,
    destination: Account,
    amount: int,
    description: str = "",
    metadata: Mapping[str, str] | None = None,
    fx_rate: Decimal | None = None,
) -> Transfer:
    """Move `amount` minor units from `source` to `destination`, both the merchant's.

    Returns the transfer `succeeded`; or, when the money refused (an inactive account,
    not enough available balance), stored as `failed` with its `failure_code` and nothing
    moved. Malformed requests raise `ValidationError` and store nothing. Accounts in two
    currencies need an explicit `fx_rate`; the money then passes through the FX accounts.
    """
    received, metadata = _validate_transfer(
        merchant=merchant,
        source=source,
        destination=destination,
        amount=amount,
        fx_rate=fx_rate,
        description=description,
        metadata=metadata,
    )
    transfer = Transfer(
        merchant=merchant,
        source_account=source,
        destination_account=destination,
        amount=amount,
        currency=source.currency,
        destination_amount=received,
        destination_currency=destination.currency,
        fx_rate=fx_rate,
        status=TransferStatus.SUCCEEDED,
        description=description,
        metadata=metadata,
    )
    legs = _transfer_legs(transfer)

    def record_succeeded(ledger_transaction: LedgerTransaction) -> list[Model]:
        transfer.ledger_transaction = ledger_transaction
        return _transfer_rows(transfer)

    try:
        with transaction.atomic():
            ledger_transaction_post(
                kind=(
                    LedgerTransactionKind.TRANSFER
                    if fx_rate is None
                    else LedgerTransactionKind.FX_TRANSFER
                ),
                legs=legs,
                description=description,
                before_lock=record_succeeded,
            )
    except Declined as decline:
        transfer.pk = None
        transfer.ledger_transaction = None
        transfer.status = TransferStatus.FAILED
        transfer.failure_code = decline.code
        transfer.failure_message = decline.message
        with transaction.atomic():
            insert_rows_together(_transfer_rows(transfer))
    return transfer
