"""The one place account and hold rows are locked.

Order is global: the business object whose state changes (a transfer being reversed:
payments.locks), then accounts, ascending primary key, then holds. Every money-moving
transaction follows it, so two transactions can never wait on each other in a cycle.
Locks are FOR NO KEY UPDATE: they serialise balance changes but do not block the KEY SHARE
locks that inserting a row with a foreign key to the account takes.
"""

from collections.abc import Iterable

from django.db import connection

from accounts.models import Account, Hold
from core.db import instance_from_row

# What posting needs to decide; the rest of the row (metadata, descriptions) stays unread.
_LOCKED_FIELDS = (
    "public_id",
    "kind",
    "status",
    "currency",
    "balance",
    "held",
    "overdraft_limit",
    "merchant_id",
)


_LOCKED_COLUMNS = ("id", *_LOCKED_FIELDS)


def accounts_lock(account_ids: Iterable[int]) -> dict[int, Account]:
    """Lock the accounts in pk order and return them, fresh from the database, by pk."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    # Every posting runs this query, so it is written out (docs/benchmarks.md). ORDER BY
    # makes PostgreSQL take the row locks in pk order; the demo's SQLite has no row locks.
    lock = " FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""
    sql = (
        f"SELECT {', '.join(_LOCKED_COLUMNS)} FROM {Account._meta.db_table}"  # noqa: S608 - names and placeholders only
        f" WHERE id IN ({', '.join(['%s'] * len(ids))}) ORDER BY id{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        rows = cursor.fetchall()
    return {row[0]: instance_from_row(Account, _LOCKED_COLUMNS, row) for row in rows}


def account_lock(account_id: int) -> Account:
    """Lock one whole account row, to change its attributes (status) rather than post."""
    return Account.objects.select_for_update(no_key=True).get(pk=account_id)


def hold_lock(hold_id: int) -> Hold:
    """Lock one hold; call after its account is locked."""
    return Hold.objects.select_for_update(no_key=True).get(pk=hold_id)
