"""Every write to merchants, customers and accounts (holds, which reserve and move money,
are the ledger's: ledger/holds.py)."""

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from accounts.locks import account_lock
from accounts.models import (
    Account,
    AccountKind,
    AccountStatus,
    Customer,
    Merchant,
    PaymentProvider,
)
from accounts.representations import account_data, customer_data
from audit.services import audit_log_record, change_record, event_emit
from core.amounts import MAX_AMOUNT
from core.currencies import normalize_currency
from core.exceptions import InvalidState, ValidationError
from core.validation import REASON_MAX_LENGTH, max_length_of, validate_metadata, validate_text


def merchant_create(*, name: str) -> Merchant:
    name = validate_text(
        name, param="name", max_length=max_length_of(Merchant, "name"), required=True
    ).strip()
    with transaction.atomic():
        merchant = Merchant.objects.create(name=name)
        audit_log_record(
            action="merchant.created",
            object_type="merchant",
            object_id=merchant.public_id,
            new_values={"name": merchant.name},
        )
    return merchant


def merchant_fx_spread_set(*, merchant: Merchant, spread_bps: int) -> Merchant:
    """Set what the merchant's FX quotes take off the reference rate, in basis points
    (0 to 9,999), audited with the spread it replaces. Quotes already given keep theirs."""
    if type(spread_bps) is not int or not 0 <= spread_bps < 10_000:
        raise ValidationError(
            "fx_spread_bps must be a whole number of basis points from 0 to 9999",
            param="fx_spread_bps",
        )
    with transaction.atomic():
        locked = Merchant.objects.select_for_update().get(pk=merchant.pk)
        old = locked.fx_spread_bps
        locked.fx_spread_bps = spread_bps
        locked.save(update_fields=["fx_spread_bps"])
        audit_log_record(
            action="merchant.fx_spread_set",
            object_type="merchant",
            object_id=locked.public_id,
            old_values={"fx_spread_bps": old},
            new_values={"fx_spread_bps": spread_bps},
        )
    return locked


def merchant_default_provider_set(*, merchant: Merchant, provider: str) -> Merchant:
    """Set the provider the merchant's new payments go to first ("" for the platform's
    default, settings.PAYMENT_DEFAULT_PROVIDER), audited with the one it replaces."""
    if provider not in {"", *PaymentProvider.values}:
        raise ValidationError(
            f"default_provider must be one of {', '.join(PaymentProvider.values)}, or blank",
            param="default_provider",
        )
    with transaction.atomic():
        locked = Merchant.objects.select_for_update().get(pk=merchant.pk)
        old = locked.default_provider
        locked.default_provider = provider
        locked.save(update_fields=["default_provider"])
        audit_log_record(
            action="merchant.default_provider_set",
            object_type="merchant",
            object_id=locked.public_id,
            old_values={"default_provider": old},
            new_values={"default_provider": provider},
        )
    return locked


def customer_create(
    *,
    merchant: Merchant,
    name: str = "",
    email: str = "",
    external_reference: str = "",
    metadata: Mapping[str, str] | None = None,
) -> Customer:
    for param, value in (
        ("name", name),
        ("email", email),
        ("external_reference", external_reference),
    ):
        validate_text(value, param=param, max_length=max_length_of(Customer, param))
    metadata = validate_metadata(metadata)
    with transaction.atomic():
        customer = Customer.objects.create(
            merchant=merchant,
            name=name,
            email=email,
            external_reference=external_reference,
            metadata=metadata,
        )
        data = customer_data(customer)
        audit_log_record(
            action="customer.created",
            object_type="customer",
            object_id=customer.public_id,
            new_values=data,
        )
        event_emit(
            merchant_id=merchant.pk,
            type="customer.created",
            object_type="customer",
            object_id=customer.public_id,
            data=data,
        )
    return customer


def account_create(
    *,
    merchant: Merchant,
    currency: str,
    customer: Customer | None = None,
    overdraft_limit: int = 0,
    description: str = "",
    metadata: Mapping[str, str] | None = None,
) -> Account:
    """Open a wallet account for `merchant` (and optionally one of its customers)."""
    currency = normalize_currency(currency)
    if customer is not None and customer.merchant_id != merchant.pk:
        raise ValidationError("no such customer", code="resource_missing", param="customer")
    if type(overdraft_limit) is not int or not 0 <= overdraft_limit <= MAX_AMOUNT:
        raise ValidationError(
            f"overdraft_limit must be a whole number from 0 to {MAX_AMOUNT}",
            param="overdraft_limit",
        )
    validate_text(
        description, param="description", max_length=max_length_of(Account, "description")
    )
    metadata = validate_metadata(metadata)
    with transaction.atomic():
        account = Account.objects.create(
            merchant=merchant,
            customer=customer,
            kind=AccountKind.WALLET,
            currency=currency,
            overdraft_limit=overdraft_limit,
            description=description,
            metadata=metadata,
        )
        _account_changed(account, "account.created", old={}, reason="")
    return account


def _account_changed(account: Account, action: str, *, old: dict[str, Any], reason: str) -> None:
    change_record(
        action=action,
        event_type="account.created" if action == "account.created" else "account.updated",
        merchant_id=account.merchant_id,
        object_type="account",
        object_id=account.public_id,
        old_values=old,
        new_values=account_data(account),
        reason=reason,
    )


def _account_set_status(
    *, account: Account, status: str, allowed_from: set[str], action: str, reason: str
) -> Account:
    reason = validate_text(
        reason, param="reason", max_length=REASON_MAX_LENGTH, required=True
    ).strip()
    if account.kind != AccountKind.WALLET:
        raise ValidationError(
            f"system account {account.public_id} cannot be frozen, unfrozen or closed",
            code="system_account",
            param="account",
        )
    with transaction.atomic():
        locked = account_lock(account.pk)
        if locked.status not in allowed_from:
            raise InvalidState(f"account {locked.public_id} is {locked.status}")
        if status == AccountStatus.CLOSED and (locked.balance != 0 or locked.held != 0):
            raise InvalidState(
                f"account {locked.public_id} must be at zero with no holds to close",
                code="account_not_empty",
            )
        old = account_data(locked)
        locked.status = status
        locked.save(update_fields=["status"])
        _account_changed(locked, action, old=old, reason=reason)
    return locked


def account_freeze(*, account: Account, reason: str) -> Account:
    """A frozen account can neither send nor receive money until unfrozen."""
    return _account_set_status(
        account=account,
        status=AccountStatus.FROZEN,
        allowed_from={AccountStatus.ACTIVE},
        action="account.frozen",
        reason=reason,
    )


def account_unfreeze(*, account: Account, reason: str) -> Account:
    return _account_set_status(
        account=account,
        status=AccountStatus.ACTIVE,
        allowed_from={AccountStatus.FROZEN},
        action="account.unfrozen",
        reason=reason,
    )


def account_close(*, account: Account, reason: str) -> Account:
    """Close for good; only an account at zero with no active holds can be closed."""
    return _account_set_status(
        account=account,
        status=AccountStatus.CLOSED,
        allowed_from={AccountStatus.ACTIVE, AccountStatus.FROZEN},
        action="account.closed",
        reason=reason,
    )
