"""The one place account and hold rows are locked.

Order is global: accounts first, ascending primary key, then holds. Every money-moving
transaction follows it, so two transactions can never wait on each other in a cycle.
Locks are FOR NO KEY UPDATE: they serialise balance changes but do not block the KEY SHARE
locks that inserting a row with a foreign key to the account takes.
"""

from collections.abc import Iterable

from accounts.models import Account, Hold

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


def accounts_lock(account_ids: Iterable[int]) -> dict[int, Account]:
    """Lock the accounts in pk order and return them, fresh from the database, by pk."""
    locked = (
        Account.objects.select_for_update(no_key=True)
        .filter(pk__in=set(account_ids))
        .only(*_LOCKED_FIELDS)
    )
    return {account.pk: account for account in locked.order_by("pk")}


def account_lock(account_id: int) -> Account:
    """Lock one whole account row, to change its attributes (status) rather than post."""
    return Account.objects.select_for_update(no_key=True).get(pk=account_id)


def hold_lock(hold_id: int) -> Hold:
    """Lock one hold; call after its account is locked."""
    return Hold.objects.select_for_update(no_key=True).get(pk=hold_id)
