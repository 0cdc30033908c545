"""The platform's system accounts: one per currency and purpose, created on first use."""

from collections.abc import Sequence

from django.db import IntegrityError, transaction

from accounts.models import Account, AccountKind
from accounts.representations import account_data
from audit.services import audit_log_record
from core.currencies import normalize_currency
from core.db import select_many


def system_account_get(*, currency: str, purpose: str) -> Account:
    """The system account for `purpose` in `currency` (any case), created, and audited, if
    it does not exist yet."""
    return system_accounts_get(currency=currency, purposes=[purpose])[purpose]


def system_accounts_get(*, currency: str, purposes: Sequence[str]) -> dict[str, Account]:
    """`system_account_get` for several purposes in one currency, by purpose: one query
    (written out: every captured payment asks for two, ADR 0007), and one more per account
    that does not exist yet."""
    currency = normalize_currency(currency)
    found = select_many(
        Account, "system_purpose", purposes, kind=AccountKind.SYSTEM, currency=currency
    )
    for purpose in purposes:
        if purpose not in found:
            found[purpose] = _system_account_create(currency=currency, purpose=purpose)
    return found


def _system_account_create(*, currency: str, purpose: str) -> Account:
    lookup = {"kind": AccountKind.SYSTEM, "currency": currency, "system_purpose": purpose}
    try:
        with transaction.atomic():
            account = Account.objects.create(**lookup)
            audit_log_record(
                action="account.created",
                object_type="account",
                object_id=account.public_id,
                new_values=account_data(account),
            )
            return account
    except IntegrityError:  # another transaction created it first
        return Account.objects.get(**lookup)
