"""Ledger reconciliation (SPEC §3 I1–I5, §4.4): re-derive the ledger's invariants from the
rows themselves and record what was checked, and every break found, in a
`ReconciliationRun`.

Everything is read in chunks of `CHUNK_SIZE` rows by primary key (keyset pagination), with
one aggregate query per chunk, so a run costs a few queries per thousand accounts or
transactions however large the ledger grows. Each per-account figure (balance, sum of
entries, newest `balance_after`, active holds) is read in one statement, so PostgreSQL
gives it one snapshot and money moving while the run is under way cannot fake a break.

Every entry is checked too, account by account in the same chunks: its `balance_after`
against the running sum of the account's entries in id order, its time against the one
before it, its currency against the account's, and a wallet's `balance_after` against its
floor (I4 at every entry, not only now). One aggregate statement per chunk of accounts
returns only the accounts with a break, with how many entries break and the first one.

I3 is checked by behaviour, not by the catalog: inside a transaction that is always rolled
back, an UPDATE and a DELETE of a row of each append-only table must be refused, and so must
an unbalanced posting, a ledger transaction without entries, an entry in another currency
than its account's and an entry added to a transaction committed earlier.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import (
    BigIntegerField,
    OuterRef,
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
    currency. Returns how many transactions were checked.

    Per chunk: the transactions' ids, then one aggregate of their entries by transaction
    and account currency (a hash join, not a lookup per entry). Two statements, yet one
    consistent picture: a ledger transaction and its entries commit together, and no entry
    is ever added to it later (ledger/0003)."""
    checked = 0
    for rows in _chunks(
        lambda last_id: _transactions_in_scope(account, since, last_id), "public_id"
    ):
        figures: dict[int, tuple[int, list[dict[str, Any]]]] = {}
        with connection.cursor() as cursor:
            in_chunk, params = _id_in("e.transaction_id", [row["id"] for row in rows])
            cursor.execute(_TRANSACTION_TOTALS_SQL.format(in_chunk=in_chunk), params)
            for transaction_id, currency, count, total in cursor.fetchall():
                entry_count, unbalanced = figures.get(transaction_id, (0, []))
                if total:
                    unbalanced = [*unbalanced, {"account_currency": currency, "total": total}]
                figures[transaction_id] = (entry_count + count, unbalanced)
        for row in rows:
            entry_count, unbalanced = figures.get(row["id"], (0, []))
            _check_transaction_row(breaks, {**row, "entry_count": entry_count}, unbalanced)
        checked += len(rows)
        if progress is not None:
            progress(len(rows))
    return checked


# By the account's currency, not the entry's own column (the two could only differ after
# a bypassed foreign key, which the per-entry check reports).
_TRANSACTION_TOTALS_SQL = (
    "SELECT e.transaction_id, a.currency, COUNT(*), CAST(SUM(e.amount) AS BIGINT)"
    " FROM ledger_ledgerentry e JOIN accounts_account a ON a.id = e.account_id"
    " WHERE {in_chunk}"
    " GROUP BY e.transaction_id, a.currency ORDER BY e.transaction_id, a.currency"
)


def _id_in(column: str, ids: list[int]) -> tuple[str, list[Any]]:
    """`column` is one of `ids`: one array parameter on PostgreSQL (a thousand placeholders
    would cost the client more than the query costs the server), a list on SQLite."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", ids


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
        currency = str(total["account_currency"])
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
        # The chunk's own id range: all accounts between its first and last (or the one
        # account of --account), never the ones before it.
        _check_entries(breaks, {row["id"]: row for row in rows}, rows[0]["id"] - 1, rows[-1]["id"])
        checked += len(rows)
        if progress is not None:
            progress(len(rows))
    return checked


# Each entry against the ones before it in its account (id order), for the accounts with
# ids in (%s, %s]; only accounts with a break come back. FILTER and window functions are
# in PostgreSQL and in the demo's SQLite alike.
_ENTRY_CHECKS = {
    # check name: the condition an entry breaks
    "balance_after": "x.balance_after <> x.running_total",
    "time_order": "x.created_at < x.previous_created_at",
    "currency": "x.currency <> a.currency",
    "floor": "a.kind = 'wallet' AND x.balance_after < -a.overdraft_limit",
}
_ENTRIES_SQL = (
    "SELECT x.account_id, "  # noqa: S608 - names only; the bounds are parameters
    + ", ".join(
        f"COUNT(*) FILTER (WHERE {condition}), MIN(x.id) FILTER (WHERE {condition})"
        for condition in _ENTRY_CHECKS.values()
    )
    + " FROM (SELECT e.id, e.account_id, e.currency, e.balance_after, e.created_at,"
    " CAST(SUM(e.amount) OVER w AS BIGINT) AS running_total,"
    " LAG(e.created_at) OVER w AS previous_created_at"
    " FROM ledger_ledgerentry e WHERE e.account_id > %s AND e.account_id <= %s"
    " WINDOW w AS (PARTITION BY e.account_id ORDER BY e.id)) x"
    " JOIN accounts_account a ON a.id = x.account_id AND a.id > %s AND a.id <= %s"
    " GROUP BY x.account_id HAVING "
    + " OR ".join(
        f"COUNT(*) FILTER (WHERE {condition}) > 0" for condition in _ENTRY_CHECKS.values()
    )
    + " ORDER BY x.account_id"
)
_ENTRY_SQL = (
    "SELECT e.id, t.public_id, e.currency, e.balance_after, e.created_at,"
    " (SELECT SUM(p.amount) FROM ledger_ledgerentry p"
    "  WHERE p.account_id = e.account_id AND p.id <= e.id),"
    " (SELECT MAX(p.created_at) FROM ledger_ledgerentry p"
    "  WHERE p.account_id = e.account_id AND p.id < e.id)"
    " FROM ledger_ledgerentry e JOIN ledger_ledgertransaction t ON t.id = e.transaction_id"
    " WHERE e.id = %s"
)


def _check_entries(
    breaks: _Breaks, accounts: dict[int, dict[str, Any]], after_id: int, up_to_id: int
) -> None:
    """The per-entry checks for the accounts of one chunk (ids in (after_id, up_to_id]);
    `accounts` holds those that are in scope, by id."""
    with connection.cursor() as cursor:
        cursor.execute(_ENTRIES_SQL, [after_id, up_to_id, after_id, up_to_id])
        flagged = cursor.fetchall()
    for account_id, *figures in flagged:
        account = accounts.get(account_id)
        if account is None:
            continue  # not in scope (--account)
        for index, check in enumerate(_ENTRY_CHECKS):
            count, first_id = figures[2 * index], figures[2 * index + 1]
            if count:
                _entry_break(breaks, account, check, count, first_id)


def _entry_break(
    breaks: _Breaks, account: dict[str, Any], check: str, count: int, entry_id: int
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_ENTRY_SQL, [entry_id])
        row = cursor.fetchone()
    _, ledger_transaction, currency, balance_after, created_at, running, previous = row
    running = int(running)
    public_id, account_currency = account["public_id"], str(account["currency"])
    where = f"account {public_id} ({account_currency}): entry {entry_id} of {ledger_transaction}"
    more = f" ({count - 1} later entries too)" if count > 1 else ""
    floor = -account["overdraft_limit"]
    expected, actual, message, name = {
        "balance_after": (
            running,
            balance_after,
            f"has balance_after {balance_after} but the entries up to it sum to {running}",
            "I2",
        ),
        "time_order": (
            str(previous),
            str(created_at),
            f"is dated {created_at}, before the entry ahead of it ({previous})",
            "I2",
        ),
        "currency": (
            account_currency,
            str(currency),
            f"is in {currency}, not its account's {account_currency}",
            "I1",
        ),
        "floor": (
            floor,
            balance_after,
            f"left the wallet at {balance_after}, below its floor of {floor}",
            "I4",
        ),
    }[check]
    breaks.add(
        check=name,
        object=public_id,
        message=f"{where} {message}{more}",
        entry=entry_id,
        entries_breaking=count,
        currency=account_currency,
        expected=expected,
        actual=actual,
    )


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


def _check_system_accounts_bound(
    breaks: _Breaks, *, purpose: str, bound: int, check: str, label: str
) -> int:
    """System accounts of `purpose` whose balance is further than `bound` from zero.
    Returns how many such accounts were checked."""
    accounts = Account.objects.filter(kind=AccountKind.SYSTEM, system_purpose=purpose).order_by(
        "currency"
    )
    count = 0
    for public_id, currency, balance in accounts.values_list("public_id", "currency", "balance"):
        count += 1
        if abs(balance) > bound:
            breaks.add(
                check=check,
                object=public_id,
                message=(
                    f"{label} {public_id} ({currency}) has balance {balance}, "
                    f"beyond the bound of ±{bound}"
                ),
                currency=str(currency),
                expected=bound,
                actual=balance,
            )
    return count


def _check_clearing_accounts(breaks: _Breaks) -> int:
    """Provider clearing accounts drain back to zero as providers settle; one far from
    zero means money the provider owes us (or we owe it) is stuck."""
    return _check_system_accounts_bound(
        breaks,
        purpose=SystemPurpose.PROVIDER_CLEARING,
        bound=settings.RECONCILE_CLEARING_THRESHOLD,
        check="clearing_threshold",
        label="provider clearing account",
    )


def _check_fx_positions(breaks: _Breaks) -> int:
    """An FX account's balance is the platform's open position in its currency: what it
    bought or sold through quotes and has not covered. Finance bounds it."""
    return _check_system_accounts_bound(
        breaks,
        purpose=SystemPurpose.FX,
        bound=settings.RECONCILE_FX_POSITION_LIMIT,
        check="fx_position",
        label="FX account",
    )


# pg_trigger.tgtype bit for TRUNCATE (PostgreSQL's include/catalog/pg_trigger.h); 'O'
# fires in the normal (origin) replication role, 'A' always.
_TRIGGER_TYPE_TRUNCATE = 1 << 5
_TRIGGER_ENABLED = {"O", "A"}
# What the guards raise: restrict_violation (append-only), check_violation (the ledger's
# constraint triggers), foreign_key_violation (an entry's currency).
_REFUSED = {"23001", "23514", "23503"}


class _LetThrough(Exception):
    """A probe's change was not refused; raised to roll its savepoint back all the same."""


class _Probe:
    """Tries what the database must refuse, each in a savepoint that is always rolled back,
    inside a transaction the caller rolls back too; a break for every attempt let through."""

    def __init__(self, breaks: _Breaks, cursor: Any) -> None:
        self.breaks, self.cursor = breaks, cursor

    def refused(
        self, table: str, what: str, sql: str, params: list[Any], *, at_commit: bool = False
    ) -> None:
        """`sql` must be refused; with `at_commit`, by the checks PostgreSQL defers to the
        commit, which are fired at once here."""
        try:
            with transaction.atomic():
                self.cursor.execute(sql, params)
                if at_commit:
                    self.cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                raise _LetThrough
        except _LetThrough:
            self.breaks.add(
                check="I3", object=table, message=f"table {table}: {what} was let through"
            )
        except DatabaseError as error:
            if getattr(error.__cause__, "sqlstate", None) not in _REFUSED:
                raise

    def insert(self, sql: str, params: list[Any]) -> int:
        self.cursor.execute(sql + " RETURNING id", params)
        return int(self.cursor.fetchone()[0])


def _check_database_guards(breaks: _Breaks) -> int | None:
    """I3 and the ledger's constraint triggers, by behaviour: inside a transaction that is
    always rolled back, probe rows are written (a system account in XTS, the ISO code for
    testing, a balanced posting and an audit row), then each guarded change is tried and
    must be refused. TRUNCATE is not tried (it would lock the tables): its triggers are
    checked in the catalog. Returns how many tables were checked, or None on a database
    other than PostgreSQL (the SQLite demo has no guards)."""
    if connection.vendor != "postgresql":
        return None
    entries, transactions, audit = (
        model._meta.db_table for model in (LedgerEntry, LedgerTransaction, AuditLog)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        probe = _Probe(breaks, cursor)
        # Every deferrable check of the schema starts deferred (a caller's transaction may
        # have made them immediate); the probe rows are checked as each probe says.
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        # Later statements see this transaction's rows and stay within it.
        account = probe.insert(
            f"INSERT INTO {Account._meta.db_table} (public_id, kind, system_purpose, currency,"  # noqa: S608
            " status, balance, held, overdraft_limit, description, metadata, created_at)"
            " VALUES ('acct_reconciliation_probe', 'system', 'settlement', 'XTS', 'active',"
            " 0, 0, 0, '', '{}', now())",
            [],
        )
        posting = probe.insert(
            f"INSERT INTO {transactions} (public_id, kind, description, created_at)"  # noqa: S608
            " VALUES ('ltx_reconciliation_probe', 'adjustment', '', now())",
            [],
        )
        entry_sql = (
            f"INSERT INTO {entries} (transaction_id, account_id, amount, currency,"  # noqa: S608
            " balance_after, created_at) VALUES (%s, %s, %s, %s, 0, now())"
        )
        entry = probe.insert(entry_sql, [posting, account, 1, "XTS"])
        probe.insert(entry_sql, [posting, account, -1, "XTS"])
        audit_row = probe.insert(
            f"INSERT INTO {audit} (created_at, actor_type, actor, action, object_type,"  # noqa: S608
            " object_id, old_values, new_values, changed_fields, reason, request_id,"
            " client_request_id, user_agent) VALUES (now(), 'system', '',"
            " 'reconciliation.probe', 'probe', '', '{}', '{}', '[]', '', '', '', '')",
            [],
        )
        for table, pk, change in (
            (transactions, posting, "description = description || '!'"),
            (entries, entry, "amount = amount + 1"),
            (audit, audit_row, "reason = reason || '!'"),
        ):
            probe.refused(table, "an UPDATE", f"UPDATE {table} SET {change} WHERE id = %s", [pk])  # noqa: S608
            probe.refused(table, "a DELETE", f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608
        empty = probe.insert(
            f"INSERT INTO {transactions} (public_id, kind, description, created_at)"  # noqa: S608
            " VALUES ('ltx_reconciliation_probe_2', 'adjustment', '', now())",
            [],
        )
        # Two entries, so that only the balance check can refuse them.
        probe.refused(
            entries,
            "an unbalanced posting",
            entry_sql + ", (%s, %s, %s, %s, 0, now())",
            [empty, account, 1, "XTS", empty, account, 1, "XTS"],
            at_commit=True,
        )
        probe.refused(
            transactions, "a ledger transaction without entries", "SELECT 1", [], at_commit=True
        )
        probe.refused(
            entries,
            "an entry in another currency than its account's",
            entry_sql,
            [posting, account, 1, "XXX"],
        )
        # One that another database transaction created (none when the whole ledger is
        # this transaction's own, as in a test).
        cursor.execute(
            f"SELECT min(id) FROM {transactions}"  # noqa: S608
            " WHERE created_in_xact IS DISTINCT FROM pg_current_xact_id()::text::bigint"
        )
        (committed,) = cursor.fetchone()
        if committed is not None:
            probe.refused(
                entries,
                "an entry added to a ledger transaction committed earlier",
                entry_sql,
                [committed, account, 1, "XTS"],
            )
        _check_truncate_triggers(breaks, cursor, [transactions, entries, audit])
        transaction.set_rollback(True)
    return 3


def _check_truncate_triggers(breaks: _Breaks, cursor: Any, tables: list[str]) -> None:
    for table in tables:
        cursor.execute(
            "SELECT tgenabled, tgtype FROM pg_trigger"
            " WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
            [table],
        )
        if not any(
            state in _TRIGGER_ENABLED and kind & _TRIGGER_TYPE_TRUNCATE
            for state, kind in cursor.fetchall()
        ):
            breaks.add(
                check="I3",
                object=table,
                message=f"table {table}: no enabled trigger refuses TRUNCATE",
            )


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
        append_only_tables = _check_database_guards(breaks)
        checked: dict[str, Any] = {
            "transactions": _check_transactions(breaks, account, since, progress),
            "accounts": _check_accounts(breaks, account, progress),
            "currencies": _check_currency_totals(breaks),
            "clearing_accounts": _check_clearing_accounts(breaks),
            "fx_accounts": _check_fx_positions(breaks),
            "append_only_tables": append_only_tables,
            "breaks_found": breaks.found,
        }
    except Exception as error:
        run.status = ReconciliationRun.Status.FAILED
        run.finished_at = timezone.now()
        with transaction.atomic():
            run.save(update_fields=["status", "finished_at"])
            audit_log_record(
                action="reconciliation.failed",
                object_type="reconciliation_run",
                object_id=str(run.pk),
                new_values={"status": run.status, "parameters": run.parameters},
                reason=f"{type(error).__name__}: {error}"[:1000],
            )
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
