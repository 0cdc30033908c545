"""Reading balances from the ledger."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import BigIntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Account, AccountKind, Hold, Merchant
from core.db import select_one
from ledger.models import LedgerEntry


@dataclass(frozen=True)
class Balance:
    """An account's balance and available balance, in minor units of `currency`."""

    account: str
    currency: str
    balance: int
    available: int


def account_balance(*, account: Account, as_of: datetime | None = None) -> Balance:
    """The balance now, or as it stood at `as_of`, rebuilt from the ledger.

    Entry and hold times come from the database's clock under the account's lock, so
    within one account entry order is time order: the newest entry at or before `as_of`
    carries the balance. Available subtracts the holds that were active at that moment.
    Both are read in one statement, one snapshot: a capture committing meanwhile (money
    leaving the holds and entering the entries at once) cannot be seen half done.
    """
    if as_of is None:
        return Balance(
            account=account.public_id,
            currency=account.currency,
            balance=account.balance,
            available=account.available,
        )
    newest = (
        LedgerEntry.objects.filter(account=OuterRef("pk"), created_at__lte=as_of)
        .order_by("-id")
        .values("balance_after")[:1]
    )
    held = (
        Hold.objects.filter(
            Q(closed_at__isnull=True) | Q(closed_at__gt=as_of),
            account=OuterRef("pk"),
            created_at__lte=as_of,
        )
        .order_by()
        .values("account")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    balance, held_total = (
        Account.objects.filter(pk=account.pk)
        .annotate(
            balance_at=Coalesce(Subquery(newest), Value(0), output_field=BigIntegerField()),
            held_at=Coalesce(Subquery(held), Value(0), output_field=BigIntegerField()),
        )
        .values_list("balance_at", "held_at")
        .get()
    )
    return Balance(
        account=account.public_id,
        currency=account.currency,
        balance=balance,
        available=balance - held_total,
    )


def wallet_balance_now(*, merchant: Merchant, public_id: str) -> Balance | None:
    """The current balance of the merchant's wallet with this public id, or None when the
    merchant has no such wallet. The API's most frequent read: one written-out query."""
    account = select_one(
        Account, merchant_id=merchant.pk, public_id=public_id, kind=AccountKind.WALLET
    )
    return None if account is None else account_balance(account=account)
