"""Ledger reconciliation (SPEC §3 I1–I5, §4.4): re-derive the ledger's invariants from the
rows themselves and record what was checked, and every break found, in a
`ReconciliationRun`.

Everything is read in chunks of `CHUNK_SIZE` rows by primary key (keyset pagination), with
one aggregate query per chunk, so a run costs a few queries per thousand accounts or
transactions however large the ledger grows. Each per-account figure (balance, sum of
entries, newest `balance_after`, active holds) is read in one statement, so PostgreSQL
gives it one snapshot and money moving while the run is under way cannot fake a break.
"""

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Account, AccountKind, Hold, HoldStatus, SystemPurpose
from audit.models import AuditLog
from audit.services import audit_log_record
from ledger.models import LedgerEntry, LedgerTransaction, ReconciliationRun

CHUNK_SIZE = 1000
# A systemic fault could break every account; keep the run row (and the report) readable.
MAX_RECORDED_BREAKS = 10_000

ProgressCallback = Callable[[int], object]


class _Breaks:
    """The breaks found so far: every one is counted, the first `MAX_RECORDED_BREAKS` kept."""

    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []
        self.found = 0

    def add(self, *, check: str, object: str, message: str, **numbers: Any) -> None:
        self.found += 1
        if len(self.recorded) < MAX_RECORDED_BREAKS:
            self.recorded.append({"check": check, "object": object, "message": message, **numbers})


def _chunks(
    rows_after: Callable[[int], QuerySet[Any]], *fields: str
) -> Iterator[list[dict[str, Any]]]:
    """The rows of `rows_after(last_id)` as dicts of `fields` (plus `id`), `CHUNK_SIZE` at
    a time, in pk order. Keyset pagination: each chunk is an index range scan from where
    the last one stopped, never an OFFSET."""
    last_id = 0
    while True:
        rows = list(rows_after(last_id).order_by("pk").values("id", *fields)[:CHUNK_SIZE])
        if not rows:
            return
        yield rows
        last_id = rows[-1]["id"]


def _transactions_in_scope(
    account: Account | None, since: datetime | None, after_id: int = 0
) -> QuerySet[LedgerTransaction]:
    """Ledger transactions with a pk above `after_id` that touch `account` and were created
    at or after `since` (each when given)."""
    transactions = LedgerTransaction.objects.filter(pk__gt=after_id)
    if account is not None:
        # A subquery rather than a join, so a transaction with two legs on the account is
        # checked once; it repeats the pk bound so PostgreSQL starts the account's entries
        # where the chunk starts instead of scanning them from the first one every time.
        transactions = transactions.filter(
            pk__in=LedgerEntry.objects.filter(account=account, transaction_id__gt=after_id).values(
                "transaction_id"
            )
        )
    if since is not None:
        transactions = transactions.filter(created_at__gte=since)
    return transactions


def _accounts_in_scope(account: Account | None, after_id: int = 0) -> QuerySet[Account]:
    accounts = Account.objects.filter(pk__gt=after_id)
    return accounts if account is None else accounts.filter(pk=account.pk)


def reconcile_scope_size(*, account: Account | None = None, since: datetime | None = None) -> int:
    """How many units of work (ledger transactions plus accounts) `reconcile_ledger` will
    report through `progress` for these arguments; a progress bar's total."""
    since = _aware(since)
    return _transactions_in_scope(account, since).count() + _accounts_in_scope(account).count()


def _aware(since: datetime | None) -> datetime | None:
    if since is not None and timezone.is_naive(since):
        return since.replace(tzinfo=UTC)
    return since


def _check_transactions(
    breaks: _Breaks,
    account: Account | None,
    since: datetime | None,
    progress: ProgressCallback | None,
) -> int:
    """I1: every transaction in scope has at least two entries and sums to zero in each
    currency. Returns how many transactions were checked."""
    entries = LedgerEntry.objects.filter(transaction=OuterRef("pk")).order_by()
    entry_count = entries.values("transaction").annotate(n=Count("pk")).values("n")
    unbalanced_currency = (
        entries.values("currency").annotate(total=Sum("amount")).filter(~Q(total=0))
    )

    def transactions_after(last_id: int) -> QuerySet[LedgerTransaction]:
        # Both figures come from correlated subqueries on the transaction_id index, so a
        # chunk is one statement; the per-currency detail is fetched only for the (rare)
        # transactions that do not balance.
        return _transactions_in_scope(account, since, last_id).annotate(
            entry_count=Coalesce(Subquery(entry_count), Value(0)),
            unbalanced=Exists(unbalanced_currency),
        )

    checked = 0
    for rows in _chunks(transactions_after, "public_id", "entry_count", "unbalanced"):
        unbalanced: dict[int, list[dict[str, Any]]] = defaultdict(list)
        flagged = [row["id"] for row in rows if row["unbalanced"]]
        if flagged:
            for total in (
                LedgerEntry.objects.filter(transaction_id__in=flagged)
                .order_by()
                .values("transaction_id", "currency")
                .annotate(total=Sum("amount"))
                .filter(~Q(total=0))
                .order_by("transaction_id", "currency")
            ):
                unbalanced[total["transaction_id"]].append(total)
        for row in rows:
            _check_transaction_row(breaks, row, unbalanced.get(row["id"], []))
        checked += len(rows)
        if progress is not None:
            progress(len(rows))
    return checked


def _check_transaction_row(
    breaks: _Breaks, row: dict[str, Any], unbalanced: list[dict[str, Any]]
) -> None:
    public_id = row["public_id"]
    if row["entry_count"] < 2:
        breaks.add(
            check="I1",
            object=public_id,
            message=(
                f"ledger transaction {public_id} has {row['entry_count']} entries; "
                "a transaction needs at least 2"
            ),
            expected=2,
            actual=row["entry_count"],
        )
    for total in unbalanced:
        currency = str(total["currency"])
        breaks.add(
            check="I1",
            object=public_id,
            message=(
                f"ledger transaction {public_id} does not balance in {currency}: "
                f"its entries sum to {total['total']}"
            ),
            currency=currency,
            expected=0,
            actual=total["total"],
        )


def _check_accounts(
    breaks: _Breaks, account: Account | None, progress: ProgressCallback | None
) -> int:
    """I2 and I4 for every account in scope. Returns how many accounts were checked."""
    entries = LedgerEntry.objects.filter(account=OuterRef("pk")).order_by()
    active_holds = Hold.objects.filter(account=OuterRef("pk"), status=HoldStatus.ACTIVE).order_by()

    def accounts_after(last_id: int) -> QuerySet[Account]:
        # One statement per chunk: the balance and the figures it is compared with come
        # from the same snapshot.
        return _accounts_in_scope(account, last_id).annotate(
            entries_total=Coalesce(
                Subquery(entries.values("account").annotate(total=Sum("amount")).values("total")),
                Value(0),
                output_field=BigIntegerField(),
            ),
            newest_balance_after=Subquery(entries.order_by("-pk").values("balance_after")[:1]),
            active_held=Coalesce(
                Subquery(
                    active_holds.values("account").annotate(total=Sum("amount")).values("total")
                ),
                Value(0),
                output_field=BigIntegerField(),
            ),
        )

    checked = 0
    fields = ("public_id", "kind", "currency", "balance", "held", "overdraft_limit")
    annotations = ("entries_total", "newest_balance_after", "active_held")
    for rows in _chunks(accounts_after, *fields, *annotations):
        for row in rows:
            _check_account_row(breaks, row)
        checked += len(rows)
        if progress is not None:
            progress(len(rows))
    return checked


def _check_account_row(breaks: _Breaks, row: dict[str, Any]) -> None:
    public_id, currency = row["public_id"], str(row["currency"])
    balance, held = row["balance"], row["held"]
    if balance != row["entries_total"]:
        breaks.add(
            check="I2",
            object=public_id,
            message=(
                f"account {public_id} ({currency}) has balance {balance} "
                f"but its entries sum to {row['entries_total']}"
            ),
            currency=currency,
            expected=row["entries_total"],
            actual=balance,
        )
    newest = row["newest_balance_after"]
    if newest is not None and newest != balance:
        breaks.add(
            check="I2",
            object=public_id,
            message=(
                f"account {public_id} ({currency}) has balance {balance} "
                f"but its newest entry's balance_after is {newest}"
            ),
            currency=currency,
            expected=balance,
            actual=newest,
        )
    if held != row["active_held"]:
        breaks.add(
            check="I4",
            object=public_id,
            message=(
                f"account {public_id} ({currency}) has {held} held "
                f"but its active holds add up to {row['active_held']}"
            ),
            currency=currency,
            expected=row["active_held"],
            actual=held,
        )
    if row["kind"] != AccountKind.WALLET:
        return  # system accounts mirror the outside world and may be negative
    floor = -row["overdraft_limit"]
    for label, value in (("balance", balance), ("available balance", balance - held)):
        if value < floor:
            breaks.add(
                check="I4",
                object=public_id,
                message=(
                    f"wallet {public_id} ({currency}) has {label} {value}, "
                    f"below its floor of {floor} (overdraft limit {row['overdraft_limit']})"
                ),
                currency=currency,
                expected=floor,
                actual=value,
            )


def _check_currency_totals(breaks: _Breaks) -> int:
    """I5: all balances in a currency sum to zero. Returns how many currencies there are."""
    totals = list(
        Account.objects.order_by()
        .values("currency")
        .annotate(total=Sum("balance"))
        .order_by("currency")
    )
    for row in totals:
        if row["total"] != 0:
            currency = str(row["currency"])
            breaks.add(
                check="I5",
                object=currency,
                message=f"balances in {currency} sum to {row['total']}, not 0",
                currency=currency,
                expected=0,
                actual=row["total"],
            )
    return len(totals)


def _check_clearing_accounts(breaks: _Breaks) -> int:
    """Provider clearing accounts drain back to zero as providers settle; one far from
    zero means money the provider owes us (or we owe it) is stuck. Returns how many
    clearing accounts were checked."""
    threshold = settings.RECONCILE_CLEARING_THRESHOLD
    clearing = Account.objects.filter(
        kind=AccountKind.SYSTEM, system_purpose=SystemPurpose.PROVIDER_CLEARING
    ).order_by("currency")
    count = 0
    for public_id, currency, balance in clearing.values_list("public_id", "currency", "balance"):
        count += 1
        if abs(balance) > threshold:
            breaks.add(
                check="clearing_threshold",
                object=public_id,
                message=(
                    f"provider clearing account {public_id} ({currency}) has balance {balance}, "
                    f"beyond the threshold of ±{threshold}"
                ),
                currency=str(currency),
                expected=threshold,
                actual=balance,
            )
    return count


# pg_trigger.tgtype bits (PostgreSQL's include/catalog/pg_trigger.h).
_TRIGGER_TYPE_DELETE = 1 << 3
_TRIGGER_TYPE_UPDATE = 1 << 4
_TRIGGER_TYPE_TRUNCATE = 1 << 5
# 'O' fires in the normal (origin) replication role, 'A' always; 'D' is disabled and 'R'
# fires only on replicas.
_TRIGGER_ENABLED = {"O", "A"}


def _check_append_only_triggers(breaks: _Breaks) -> int | None:
    """I3: the triggers that make the ledger and the audit log append-only are installed,
    enabled, and refuse UPDATE, DELETE and TRUNCATE. Returns how many tables were checked,
    or None on a database other than PostgreSQL (the SQLite demo has no triggers)."""
    if connection.vendor != "postgresql":
        return None
    tables = [model._meta.db_table for model in (LedgerTransaction, LedgerEntry, AuditLog)]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                "SELECT tgname, tgenabled, tgtype FROM pg_trigger"
                " WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal"
                " AND strpos(tgname, %s) > 0",
                [table, "append_only"],
            )
            triggers = cursor.fetchall()
            enabled = [(name, kind) for name, state, kind in triggers if state in _TRIGGER_ENABLED]
            refuses_edits = any(
                kind & _TRIGGER_TYPE_UPDATE and kind & _TRIGGER_TYPE_DELETE for _, kind in enabled
            )
            refuses_truncate = any(kind & _TRIGGER_TYPE_TRUNCATE for _, kind in enabled)
            if refuses_edits and refuses_truncate:
                continue
            if triggers:
                names = ", ".join(name for name, _, _ in triggers)
                message = (
                    f"table {table}: append-only trigger {names} is disabled "
                    "or does not refuse UPDATE, DELETE and TRUNCATE"
                )
            else:
                message = f"table {table} has no append-only trigger"
            breaks.add(check="I3", object=table, message=message)
    return len(tables)


def reconcile_ledger(
    *,
    account: Account | None = None,
    since: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> ReconciliationRun:
    """Check the ledger's invariants and record the run with every break found.

    I1 covers the ledger transactions that touch `account` (when given) and were created
    at or after `since` (when given; a naive datetime is taken as UTC). I2 and I4 cover
    `account`, or every account. I5, the provider clearing threshold and I3 (PostgreSQL
    only) are global and cheap, so they always run. `progress(n)` is called after each
    chunk of `n` transactions or accounts (see `reconcile_scope_size` for the total).

    The run row is written first with status `running`, so an observer can see a run in
    progress, then finished as `ok` or `broken`, or `failed` if a check itself crashed.
    """
    since = _aware(since)
    run = ReconciliationRun.objects.create(
        parameters={
            "account": account.public_id if account is not None else None,
            "since": since.isoformat() if since is not None else None,
        }
    )
    breaks = _Breaks()
    try:
        append_only_tables = _check_append_only_triggers(breaks)
        checked: dict[str, Any] = {
            "transactions": _check_transactions(breaks, account, since, progress),
            "accounts": _check_accounts(breaks, account, progress),
            "currencies": _check_currency_totals(breaks),
            "clearing_accounts": _check_clearing_accounts(breaks),
            "append_only_tables": append_only_tables,
            "breaks_found": breaks.found,
        }
    except Exception:
        run.status = ReconciliationRun.Status.FAILED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        raise

    run.checked = checked
    run.breaks = breaks.recorded
    run.status = ReconciliationRun.Status.BROKEN if breaks.found else ReconciliationRun.Status.OK
    run.finished_at = timezone.now()
    with transaction.atomic():
        run.save(update_fields=["checked", "breaks", "status", "finished_at"])
        audit_log_record(
            action="reconciliation.finished",
            object_type="reconciliation_run",
            object_id=str(run.pk),
            new_values={
                "status": run.status,
                "parameters": run.parameters,
                "checked": checked,
            },
        )
    return run
