"""The platform's system accounts: one per currency and purpose, created on first use."""

from django.db import IntegrityError, transaction

from accounts.models import Account, AccountKind
from accounts.representations import account_data
from audit.services import audit_log_record
from core.currencies import normalize_currency


def system_account_get(*, currency: str, purpose: str) -> Account:
    """The system account for `purpose` in `currency` (any case), created, and audited, if
    it does not exist yet."""
    currency = normalize_currency(currency)
    lookup = {"kind": AccountKind.SYSTEM, "currency": currency, "system_purpose": purpose}
    account = Account.objects.filter(**lookup).first()
    if account is not None:
        return account
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
