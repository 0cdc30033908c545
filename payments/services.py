"""Transfers: money moved between two accounts of one merchant."""

from collections.abc import Mapping

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import Account, AccountKind, Merchant, SystemPurpose
from accounts.system import system_account_get
from audit.services import audit_log_build, change_record, event_build
from core.amounts import MAX_AMOUNT, validate_amount
from core.db import insert_rows_together, retry_on_conflict
from core.exceptions import Declined, InvalidState, ValidationError
from core.validation import REASON_MAX_LENGTH, max_length_of, validate_metadata, validate_text
from ledger.models import LedgerTransaction, LedgerTransactionKind
from ledger.services import Leg, ledger_transaction_post, reversal_post
from payments.fx import fx_convert, fx_quote_check
from payments.locks import transfer_lock
from payments.models import FxQuote, Transfer, TransferStatus
from payments.representations import transfer_data


def _validate_transfer(
    *,
    merchant: Merchant,
    source: Account,
    destination: Account,
    amount: int,
    fx_quote: FxQuote | None,
    description: str,
    metadata: Mapping[str, str] | None,
) -> dict[str, str]:
    """Refuse a malformed transfer before anything is written; return the metadata to
    store."""
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
    if source.currency == destination.currency and fx_quote is not None:
        raise ValidationError(
            "fx_quote is only for transfers between accounts in two currencies",
            param="fx_quote",
        )
    if source.currency != destination.currency and fx_quote is None:
        raise ValidationError(
            f"the accounts are in {source.currency} and {destination.currency}; a "
            "cross-currency transfer needs an fx_quote (POST /api/v1/fx_quotes)",
            code="parameter_missing",
            param="fx_quote",
        )
    return metadata


def _destination_amount(
    *, merchant: Merchant, source: Account, destination: Account, amount: int, quote: FxQuote
) -> int:
    """What the destination receives at the quote's rate; refused when it rounds to
    nothing or exceeds the maximum amount."""
    received = fx_convert(
        amount=amount,
        source_currency=source.currency,
        destination_currency=destination.currency,
        rate=fx_quote_check(quote=quote, merchant=merchant, source=source, destination=destination),
    )
    if received <= 0:
        raise ValidationError("the converted amount rounds to zero", param="amount")
    if received > MAX_AMOUNT:
        raise ValidationError(
            f"the converted amount exceeds the maximum of {MAX_AMOUNT} minor units",
            param="amount",
        )
    return received


def _transfer_legs(transfer: Transfer) -> list[Leg]:
    source, destination = transfer.source_account, transfer.destination_account
    if transfer.fx_quote is None:
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
    fx_quote: FxQuote | None = None,
) -> Transfer:
    """Move `amount` minor units from `source` to `destination`, both the merchant's.

    Returns the transfer `succeeded`; or, when the money refused (an inactive account,
    not enough available balance), stored as `failed` with its `failure_code` and nothing
    moved. Malformed requests raise `ValidationError` and store nothing. Accounts in two
    currencies need the merchant's unexpired `fx_quote` for their pair; the money then
    passes through the FX accounts at the quote's rate.
    """
    metadata = _validate_transfer(
        merchant=merchant,
        source=source,
        destination=destination,
        amount=amount,
        fx_quote=fx_quote,
        description=description,
        metadata=metadata,
    )
    received = (
        amount
        if fx_quote is None
        else _destination_amount(
            merchant=merchant, source=source, destination=destination, amount=amount, quote=fx_quote
        )
    )
    transfer = Transfer(
        merchant=merchant,
        source_account=source,
        destination_account=destination,
        amount=amount,
        currency=source.currency,
        destination_amount=received,
        destination_currency=destination.currency,
        fx_quote=fx_quote,
        fx_rate=fx_quote.rate if fx_quote is not None else None,
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
                    if fx_quote is None
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


@retry_on_conflict
def transfer_reverse(*, transfer: Transfer, reason: str) -> Transfer:
    """Send a succeeded transfer's money back: its ledger transaction is reversed, the
    transfer becomes `reversed` and says by which ledger transaction, with its event and
    audit row, all in one transaction. The transfer's row is locked first (before the
    accounts), so a transfer is reversed once; the destination must still have the money
    available (`InsufficientFunds` otherwise, and nothing changes)."""
    reason = validate_text(
        reason, param="reason", max_length=REASON_MAX_LENGTH, required=True
    ).strip()
    with transaction.atomic():
        locked = transfer_lock(transfer.pk)
        if locked.status != TransferStatus.SUCCEEDED:
            raise InvalidState(
                f"transfer {locked.public_id} is {locked.status}; only a succeeded transfer "
                "can be reversed"
            )
        assert locked.ledger_transaction is not None  # noqa: S101 - a check constraint holds it
        old = transfer_data(locked)
        locked.reversal = reversal_post(
            ledger_transaction=locked.ledger_transaction,
            description=f"Reversal of {locked.public_id}",
        )
        locked.status = TransferStatus.REVERSED
        locked.save(update_fields=["status", "reversal"])
        change_record(
            action="transfer.reversed",
            event_type="transfer.reversed",
            merchant_id=locked.merchant_id,
            object_type="transfer",
            object_id=locked.public_id,
            old_values=old,
            new_values=transfer_data(locked),
            reason=reason,
        )
    return locked
