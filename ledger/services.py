"""Posting to the ledger: the only code that changes an account's balance."""

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Model
from django.utils import timezone

from accounts.locks import accounts_lock
from accounts.models import Account, AccountKind, AccountStatus, SystemPurpose
from accounts.system import system_account_get
from audit.services import audit_log_build, audit_log_record
from core.amounts import validate_amount
from core.db import insert_rows, insert_rows_together, retry_on_conflict
from core.exceptions import AccountInactive, InsufficientFunds, InvalidState, ValidationError
from core.validation import REASON_MAX_LENGTH, max_length_of, validate_text
from ledger.models import LedgerEntry, LedgerTransaction, LedgerTransactionKind


@dataclass(frozen=True)
class Leg:
    """One side of a posting: `amount` minor units added to (or, when negative, taken
    from) `account`'s balance, in the account's currency."""

    account: Account
    amount: int


def _validate_legs(legs: Sequence[Leg]) -> None:
    if len(legs) < 2:
        raise ValidationError("a ledger transaction needs at least two legs", code="unbalanced")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        validate_amount(leg.amount, allow_negative=True)
        totals[leg.account.currency] += leg.amount
    if any(totals.values()):
        raise ValidationError(
            f"legs do not sum to zero per currency: {dict(totals)}", code="unbalanced"
        )


def _ledger_transaction_data(ledger_transaction: LedgerTransaction, legs: Sequence[Leg]) -> dict:
    return {
        "id": ledger_transaction.public_id,
        "kind": ledger_transaction.kind,
        "description": ledger_transaction.description,
        "reverses": ledger_transaction.reverses.public_id if ledger_transaction.reverses else None,
        "legs": [
            {
                "account": leg.account.public_id,
                "amount": leg.amount,
                "currency": leg.account.currency,
            }
            for leg in legs
        ],
    }


def ledger_transaction_post(
    *,
    kind: str,
    legs: Sequence[Leg],
    description: str = "",
    reverses: LedgerTransaction | None = None,
    held_deltas: Mapping[int, int] | None = None,
    before_lock: Callable[[LedgerTransaction], Iterable[Model]] | None = None,
    posted_at: datetime | None = None,
) -> LedgerTransaction:
    """Post a balanced transaction of N legs, atomically.

    The legs are checked to sum to zero per currency before anything is written. The
    transaction row is inserted first with its audit row (in one statement); with
    `before_lock`, the transaction first, then its audit row together in one statement with
    the unsaved rows `before_lock` builds for the caller (a transfer pointing at the
    transaction, its event and audit row); only then are the accounts locked (in pk
    order), checked (active; a wallet's available balance within its overdraft limit),
    updated in one statement, and the entries inserted with each account's
    `balance_after`. Keeping the writes that need no lock ahead of it keeps the locked
    section short. `held_deltas` changes accounts' held amounts in the same statement
    (capturing a hold). Raises `AccountInactive` or `InsufficientFunds` with nothing written.

    Each entry's currency is its locked account's, whatever the caller's `Account`
    instance says: a leg whose instance names another currency is refused (and PostgreSQL
    refuses an entry in another currency than its account's, ledger/0003).

    The entries' `created_at` is the database's clock once the accounts are locked, so
    that within an account entry order (ids) is time order, whichever application server
    posted them (what "balance at time T" relies on). `posted_at` replaces it, for a caller
    that must stamp other rows with the same moment (a hold capture's `closed_at`); only a
    caller that already holds the accounts' locks may pass it, having taken it from
    `core.db.database_now()` after locking them.
    """
    validate_text(
        description, param="description", max_length=max_length_of(LedgerTransaction, "description")
    )
    _validate_legs(legs)
    with transaction.atomic(savepoint=False):
        ledger_transaction = LedgerTransaction(
            kind=kind, description=description, reverses=reverses
        )
        audit = audit_log_build(
            action="ledger_transaction.posted",
            object_type="ledger_transaction",
            object_id=ledger_transaction.public_id,
            new_values=_ledger_transaction_data(ledger_transaction, legs),
        )
        if before_lock is None:
            # The audit row names the transaction by its public id, known before the
            # insert: both in one statement.
            insert_rows_together([ledger_transaction, audit])
        else:
            # The caller's rows point at the transaction's primary key.
            insert_rows([ledger_transaction])
            insert_rows_together([audit, *before_lock(ledger_transaction)])
        _apply_legs(ledger_transaction, legs, held_deltas or {}, posted_at)
    return ledger_transaction


def _apply_legs(
    ledger_transaction: LedgerTransaction,
    legs: Sequence[Leg],
    held_deltas: Mapping[int, int],
    posted_at: datetime | None,
) -> None:
    balance_deltas: dict[int, int] = defaultdict(int)
    for leg in legs:
        balance_deltas[leg.account.pk] += leg.amount
    locked = accounts_lock(balance_deltas.keys() | held_deltas.keys())

    for leg in legs:
        if leg.account.currency != locked[leg.account.pk].currency:
            raise ValidationError(
                f"account {locked[leg.account.pk].public_id} is in "
                f"{locked[leg.account.pk].currency}, not {leg.account.currency}",
                code="currency_mismatch",
                param="account",
            )
    for pk, account in locked.items():
        if account.status != AccountStatus.ACTIVE:
            raise AccountInactive(
                f"account {account.public_id} is {account.status}", param="account"
            )
        balance_delta = balance_deltas.get(pk, 0)
        held_delta = held_deltas.get(pk, 0)
        if account.kind == AccountKind.WALLET and balance_delta - held_delta < 0:
            available_after = account.balance + balance_delta - account.held - held_delta
            if available_after < -account.overdraft_limit:
                raise InsufficientFunds(
                    f"account {account.public_id} has {account.available} available",
                    param="amount",
                )

    updated_at = _add_to_accounts(
        [(pk, balance_deltas.get(pk, 0), held_deltas.get(pk, 0)) for pk in locked]
    )

    now = posted_at if posted_at is not None else updated_at
    running = {pk: account.balance for pk, account in locked.items()}
    entries = []
    for leg in legs:
        running[leg.account.pk] += leg.amount
        entries.append(
            LedgerEntry(
                transaction=ledger_transaction,
                account_id=leg.account.pk,
                amount=leg.amount,
                currency=locked[leg.account.pk].currency,
                balance_after=running[leg.account.pk],
                created_at=now,
            )
        )
    insert_rows(entries)


def _add_to_accounts(deltas: list[tuple[int, int, int]]) -> datetime:
    """Add (balance, held) deltas to locked accounts, in SQL: Python never writes a balance
    it read. On PostgreSQL one statement updates every account, which keeps the locked
    section short, and returns the database's clock (`clock_timestamp()`, read under the
    locks), the entries' time; the demo's SQLite gets one plain update per account and this
    process's clock."""
    if connection.vendor != "postgresql":
        for pk, balance_delta, held_delta in deltas:
            Account.objects.filter(pk=pk).update(
                balance=F("balance") + balance_delta, held=F("held") + held_delta
            )
        return timezone.now()
    values = ", ".join(["(%s::bigint, %s::bigint, %s::bigint)"] * len(deltas))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_account AS a"  # noqa: S608 - only placeholders are interpolated
            " SET balance = a.balance + v.balance_delta, held = a.held + v.held_delta"
            f" FROM (VALUES {values}) AS v(id, balance_delta, held_delta) WHERE a.id = v.id"
            " RETURNING clock_timestamp()",
            [value for row in deltas for value in row],
        )
        return max(row[0] for row in cursor.fetchall())


# Ledger transactions that a business object owns: they are reversed through it (e.g.
# `payments.services.transfer_reverse`), which keeps its status in step with the ledger.
OWNED_KINDS = frozenset(
    {
        LedgerTransactionKind.TRANSFER,
        LedgerTransactionKind.FX_TRANSFER,
        LedgerTransactionKind.HOLD_CAPTURE,
        LedgerTransactionKind.PAYMENT,
    }
)


@retry_on_conflict
def ledger_transaction_reverse(
    *, ledger_transaction: LedgerTransaction, description: str = ""
) -> LedgerTransaction:
    """Reverse a ledger transaction that only the ledger owns (a manual adjustment). One
    that a transfer or a hold owns is refused: reverse the transfer instead."""
    if ledger_transaction.kind in OWNED_KINDS:
        raise InvalidState(
            f"{ledger_transaction.public_id} belongs to a {ledger_transaction.get_kind_display()}"
            "; reverse that instead",
            code="reverse_through_owner",
        )
    return reversal_post(ledger_transaction=ledger_transaction, description=description)


def reversal_post(
    *, ledger_transaction: LedgerTransaction, description: str = ""
) -> LedgerTransaction:
    """Post the exact opposite of `ledger_transaction`, pointing back at it: the one
    posting behind every reversal, for the object that owns the transaction to call in its
    own transaction. A reversal is never reversed, and a transaction is reversed at most
    once (PostgreSQL holds both, under concurrency too)."""
    if ledger_transaction.kind == LedgerTransactionKind.REVERSAL:
        raise InvalidState(
            f"{ledger_transaction.public_id} is a reversal; a reversal cannot be reversed",
            code="reversal_not_reversible",
        )
    if LedgerTransaction.objects.filter(reverses=ledger_transaction).exists():
        raise InvalidState(
            f"{ledger_transaction.public_id} is already reversed", code="already_reversed"
        )
    legs = [
        Leg(account=entry.account, amount=-entry.amount)
        for entry in ledger_transaction.entries.select_related("account").order_by("pk")
    ]
    try:
        with transaction.atomic():
            return ledger_transaction_post(
                kind=LedgerTransactionKind.REVERSAL,
                legs=legs,
                description=description or f"Reversal of {ledger_transaction.public_id}",
                reverses=ledger_transaction,
            )
    except IntegrityError as error:
        if LedgerTransaction.objects.filter(reverses=ledger_transaction).exists():
            raise InvalidState(
                f"{ledger_transaction.public_id} is already reversed", code="already_reversed"
            ) from error
        raise


@retry_on_conflict
def adjustment_post(*, account: Account, amount: int, reason: str) -> LedgerTransaction:
    """An operator's manual correction: credit (amount > 0) or debit (amount < 0) `account`
    against the settlement system account of its currency. The reason is required and
    lands in the audit trail."""
    # The reason is also the ledger transaction's description, hence the one limit.
    reason = validate_text(
        reason, param="reason", max_length=REASON_MAX_LENGTH, required=True
    ).strip()
    validate_amount(amount, allow_negative=True)
    if account.kind != AccountKind.WALLET:
        raise ValidationError("only wallet accounts are adjusted by hand", param="account")
    settlement = system_account_get(currency=account.currency, purpose=SystemPurpose.SETTLEMENT)
    with transaction.atomic():
        ledger_transaction = ledger_transaction_post(
            kind=LedgerTransactionKind.ADJUSTMENT,
            legs=[Leg(account=account, amount=amount), Leg(account=settlement, amount=-amount)],
            description=reason,
        )
        audit_log_record(
            action="account.adjusted",
            object_type="account",
            object_id=account.public_id,
            new_values={"amount": amount, "ledger_transaction": ledger_transaction.public_id},
            reason=reason,
        )
    return ledger_transaction
