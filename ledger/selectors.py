"""Reading balances from the ledger."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, Sum

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

    An entry's `created_at` is taken after its account is locked, so within one account
    entry order is time order: the newest entry at or before `as_of` carries the balance.
    Available subtracts the holds that were active at that moment.
    """
    if as_of is None:
        return Balance(
            account=account.public_id,
            currency=account.currency,
            balance=account.balance,
            available=account.available,
        )
    newest = (
        LedgerEntry.objects.filter(account=account, created_at__lte=as_of)
        .order_by("-id")
        .values_list("balance_after", flat=True)
        .first()
    )
    balance = newest or 0
    held = Hold.objects.filter(
        Q(closed_at__isnull=True) | Q(closed_at__gt=as_of),
        account=account,
        created_at__lte=as_of,
    ).aggregate(total=Sum("amount"))["total"]
    return Balance(
        account=account.public_id,
        currency=account.currency,
        balance=balance,
        available=balance - (held or 0),
    )


def wallet_balance_now(*, merchant: Merchant, public_id: str) -> Balance | None:
    """The current balance of the merchant's wallet with this public id, or None when the
    merchant has no such wallet. The API's most frequent read: one written-out query."""
    account = select_one(
        Account, merchant_id=merchant.pk, public_id=public_id, kind=AccountKind.WALLET
    )
    return None if account is None else account_balance(account=account)
