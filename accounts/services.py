"""Every write to merchants, customers, accounts and holds."""

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.locks import account_lock, accounts_lock, hold_lock
from accounts.models import (
    Account,
    AccountKind,
    AccountStatus,
    Customer,
    Hold,
    HoldStatus,
    Merchant,
    PaymentProvider,
)
from accounts.representations import account_data, customer_data, hold_data
from audit.services import audit_log_record, change_record, event_emit
from core.amounts import MAX_AMOUNT, validate_amount
from core.currencies import normalize_currency
from core.db import database_now, retry_on_conflict
from core.exceptions import AccountInactive, InsufficientFunds, InvalidState, ValidationError
from core.validation import REASON_MAX_LENGTH, max_length_of, validate_metadata, validate_text
from ledger.models import LedgerTransactionKind
from ledger.services import Leg, ledger_transaction_post

logger = logging.getLogger(__name__)


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


def _hold_changed(hold: Hold, action: str, *, old: dict[str, Any], reason: str = "") -> None:
    audit_log_record(
        action=action,
        object_type="hold",
        object_id=hold.public_id,
        old_values=old,
        new_values=hold_data(hold),
        reason=reason,
    )


@retry_on_conflict
def hold_create(
    *, account: Account, amount: int, description: str = "", expires_at: datetime | None = None
) -> Hold:
    """Reserve `amount` of the account's available balance."""
    validate_amount(amount)
    validate_text(description, param="description", max_length=max_length_of(Hold, "description"))
    with transaction.atomic():
        locked = accounts_lock([account.pk])[account.pk]
        if locked.status != AccountStatus.ACTIVE:
            raise AccountInactive(f"account {locked.public_id} is {locked.status}", param="account")
        if locked.available - amount < -locked.overdraft_limit:
            raise InsufficientFunds(
                f"account {locked.public_id} has {locked.available} available", param="amount"
            )
        hold = Hold.objects.create(
            account=locked,
            amount=amount,
            description=description,
            expires_at=expires_at,
            created_at=database_now(),
        )
        Account.objects.filter(pk=locked.pk).update(held=F("held") + amount)
        _hold_changed(hold, "hold.created", old={})
    return hold


def _hold_close(*, hold: Hold, status: str, action: str, reason: str = "") -> Hold:
    with transaction.atomic():
        account = accounts_lock([hold.account_id])[hold.account_id]
        locked = hold_lock(hold.pk)
        if locked.status != HoldStatus.ACTIVE:
            raise InvalidState(f"hold {locked.public_id} is {locked.status}")
        old = hold_data(locked)
        Account.objects.filter(pk=account.pk).update(held=F("held") - locked.amount)
        locked.status = status
        locked.closed_at = database_now()
        locked.save(update_fields=["status", "closed_at"])
        _hold_changed(locked, action, old=old, reason=reason)
    return locked


@retry_on_conflict
def hold_release(*, hold: Hold, reason: str = "") -> Hold:
    """Give the reserved funds back to the account's available balance."""
    validate_text(reason, param="reason", max_length=REASON_MAX_LENGTH)
    return _hold_close(hold=hold, status=HoldStatus.RELEASED, action="hold.released", reason=reason)


@retry_on_conflict
def hold_expire(*, hold: Hold, now: datetime | None = None) -> Hold:
    """Release a hold whose time ran out by `now` (default: the current time); the
    scheduled task calls this."""
    if hold.expires_at is None or hold.expires_at > (now or database_now()):
        raise InvalidState(f"hold {hold.public_id} has not expired")
    return _hold_close(hold=hold, status=HoldStatus.EXPIRED, action="hold.expired")


@retry_on_conflict
def hold_capture(*, hold: Hold, destination: Account, amount: int | None = None) -> Hold:
    """Move `amount` (default: all) of the held funds to `destination` and release the rest."""
    if destination.pk == hold.account_id:
        raise ValidationError("a hold is captured to another account", param="destination")
    account = hold.account
    if destination.currency != account.currency:
        raise ValidationError("destination must be in the hold's currency", param="destination")
    if destination.kind == AccountKind.WALLET and destination.merchant_id != account.merchant_id:
        raise ValidationError("no such account", code="resource_missing", param="destination")
    with transaction.atomic():
        accounts_lock([account.pk, destination.pk])
        locked = hold_lock(hold.pk)
        # Taken under the locks: the entries and the hold's closing share this moment, so
        # the balance at any time counts the captured money once, as held or as moved.
        now = database_now()
        if locked.status != HoldStatus.ACTIVE:
            raise InvalidState(f"hold {locked.public_id} is {locked.status}")
        if locked.expires_at is not None and locked.expires_at <= now:
            raise InvalidState(f"hold {locked.public_id} has expired", code="hold_expired")
        capture = locked.amount if amount is None else amount
        if validate_amount(capture) > locked.amount:
            raise ValidationError(
                f"amount must be between 1 and the held {locked.amount}", param="amount"
            )
        old = hold_data(locked)
        locked.ledger_transaction = ledger_transaction_post(
            kind=LedgerTransactionKind.HOLD_CAPTURE,
            legs=[Leg(account=account, amount=-capture), Leg(account=destination, amount=capture)],
            description=f"Capture of {locked.public_id}",
            held_deltas={account.pk: -locked.amount},
            posted_at=now,
        )
        locked.status = HoldStatus.CAPTURED
        locked.captured_amount = capture
        locked.closed_at = now
        locked.save(update_fields=["status", "captured_amount", "closed_at", "ledger_transaction"])
        _hold_changed(locked, "hold.captured", old=old)
    return locked


def holds_expire_due(*, now: datetime | None = None) -> int:
    """Expire every active hold whose time has come, each in its own transaction; returns
    how many were expired. A hold closed meanwhile by someone else is skipped; a hold that
    fails for any other reason is logged and skipped, so one bad hold cannot stop the sweep."""
    now = now or timezone.now()
    due = Hold.objects.filter(status=HoldStatus.ACTIVE, expires_at__lte=now)
    expired = 0
    for hold in due.order_by("pk").iterator():
        try:
            hold_expire(hold=hold, now=now)
        except InvalidState:
            continue
        except Exception:
            logger.exception("could not expire hold %s", hold.public_id)
            continue
        expired += 1
    return expired
