"""Where payments' own rows are locked. A business object's row comes first, before the
accounts it moves money between (accounts.locks gives the rest of the global order:
accounts in primary-key order, then holds). A refund's payment comes before the refund."""

import functools

from django.db import connection
from django.db.models import Model

from accounts.models import Account, Customer
from core.db import fetch_one, instance_from_row
from payments.models import Payment, Payout, Refund, Transfer


def transfer_lock(transfer_id: int) -> Transfer:
    """Lock one transfer (with its accounts and ledger transaction read alongside, not
    locked), to change its state: a second reversal waits here and then sees the first."""
    return (
        Transfer.objects.select_for_update(of=("self",), no_key=True)
        .select_related("source_account", "destination_account", "ledger_transaction")
        .get(pk=transfer_id)
    )


def _columns(model: type[Model], alias: str) -> tuple[list[str], tuple[str, ...]]:
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    return [f"{alias}.{quote(f.column)}" for f in fields], tuple(f.attname for f in fields)


@functools.cache
def _payment_lock_sql() -> tuple[str, tuple[tuple[type[Model], tuple[str, ...]], ...]]:
    """The payment joined with its destination account and (maybe) customer; each model's
    attnames in the order of its columns."""
    parts = [(Payment, "p"), (Account, "a"), (Customer, "c")]
    selected, shapes = [], []
    for model, alias in parts:
        columns, names = _columns(model, alias)
        selected += columns
        shapes.append((model, names))
    sql = (
        f"SELECT {', '.join(selected)} FROM {Payment._meta.db_table} p"  # noqa: S608 - names only
        f" JOIN {Account._meta.db_table} a ON a.id = p.destination_account_id"
        f" LEFT JOIN {Customer._meta.db_table} c ON c.id = p.customer_id WHERE p.id = %s"
    )
    return sql, tuple(shapes)


def payment_lock(payment_id: int) -> Payment:
    """Lock one payment, before its accounts (ledger_transaction_post locks those), to
    change its state: of two workers applying outcomes, or a capture racing a cancel, the
    second waits here and then sees what the first did. Its destination account and
    customer are read alongside, not locked. Every provider answer runs it, so it is
    written out (ADR 0007); `Payment.DoesNotExist` when there is no such payment."""
    sql, shapes = _payment_lock_sql()
    lock = " FOR NO KEY UPDATE OF p" if connection.vendor == "postgresql" else ""
    row = fetch_one(sql + lock, [payment_id])
    if row is None:
        raise Payment.DoesNotExist(f"no payment {payment_id}")
    instances, start = [], 0
    for model, names in shapes:
        values = row[start : start + len(names)]
        start += len(names)
        instances.append(None if values[0] is None else instance_from_row(model, names, values))
    payment, account, customer = instances
    assert isinstance(payment, Payment) and isinstance(account, Account)  # noqa: S101 - joined
    payment.destination_account = account
    payment.customer = customer  # type: ignore[assignment]
    return payment


def refund_lock(refund_id: int) -> Refund:
    """Lock one refund, after its payment (`payment_lock`) and before the accounts: the
    payment's lock serialises its refunds' admissions and outcomes (amount_refunded)."""
    return (
        Refund.objects.select_for_update(of=("self",), no_key=True)
        .select_related("payment", "hold", "hold__account")
        .get(pk=refund_id)
    )


def payout_lock(payout_id: int) -> Payout:
    """Lock one payout, before its source account, to apply the provider's answer."""
    return (
        Payout.objects.select_for_update(of=("self",), no_key=True)
        .select_related("source_account", "hold", "hold__account")
        .get(pk=payout_id)
    )
