"""The platform's system accounts: one per currency and purpose, created on first use."""

from django.db import IntegrityError, transaction

from accounts.models import Account, AccountKind


def system_account_get(*, currency: str, purpose: str) -> Account:
    """The system account for `purpose` in `currency`, created if it does not exist yet."""
    lookup = {"kind": AccountKind.SYSTEM, "currency": currency, "system_purpose": purpose}
    account = Account.objects.filter(**lookup).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return Account.objects.create(**lookup)
    except IntegrityError:  # another transaction created it first
        return Account.objects.get(**lookup)
