"""Holds: an amount of an account's available balance reserved, then released, expired or
captured. A hold is the ledger's pending transfer (as in TigerBeetle): while active it
moves the account's `held` (so `available`), and its capture is a posting. The rows live in
`accounts.models.Hold` (a hold is a property of an account); every write to them is here.
"""

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.locks import accounts_lock, hold_lock
from accounts.models import Account, AccountKind, AccountStatus, Hold, HoldStatus
from accounts.representations import hold_data
from audit.services import audit_log_record
from core.amounts import validate_amount
from core.db import database_now, retry_on_conflict
from core.exceptions import AccountInactive, InsufficientFunds, InvalidState, ValidationError
from core.validation import REASON_MAX_LENGTH, max_length_of, validate_text
from ledger.models import LedgerTransactionKind
from ledger.services import Leg, ledger_transaction_post

logger = logging.getLogger(__name__)


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
