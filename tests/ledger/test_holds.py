"""Holds: reserving available funds, then releasing, capturing or expiring them."""

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import Account, Hold, HoldStatus, SystemPurpose
from accounts.services import account_freeze
from accounts.system import system_account_get
from audit.models import AuditLog
from core.exceptions import AccountInactive, InsufficientFunds, InvalidState, ValidationError
from ledger import holds
from ledger.holds import (
    hold_capture,
    hold_create,
    hold_expire,
    hold_release,
    holds_expire_due,
)
from ledger.models import LedgerTransactionKind
from ledger.tasks import expire_holds
from tests.bad_inputs import bad_text
from tests.factories import AccountFactory
from tests.invariants import invariant_violations

pytestmark = pytest.mark.django_db


def _fresh(account: Account) -> Account:
    account.refresh_from_db()
    return account


def _audit(action: str, hold: Hold) -> AuditLog:
    return AuditLog.objects.get(action=action, object_type="hold", object_id=hold.public_id)


@pytest.fixture
def wallet() -> Account:
    return AccountFactory.create(balance=1_000)


@pytest.fixture
def payee(wallet: Account) -> Account:
    return AccountFactory.create(merchant=wallet.merchant)


# --- create ---------------------------------------------------------------------------------


def test_hold_reduces_available_but_not_balance(wallet: Account) -> None:
    hold_create(account=wallet, amount=300)

    _fresh(wallet)
    assert (wallet.balance, wallet.held, wallet.available) == (1_000, 300, 700)


def test_new_hold_is_active_with_a_hold_id(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300, description="payout in flight")

    assert hold.public_id.startswith("hold_")
    assert (hold.status, hold.amount, hold.captured_amount) == (HoldStatus.ACTIVE, 300, 0)


def test_hold_of_the_whole_available_balance_is_allowed(wallet: Account) -> None:
    hold_create(account=wallet, amount=1_000)

    assert _fresh(wallet).available == 0


def test_hold_beyond_available_is_refused(wallet: Account) -> None:
    hold_create(account=wallet, amount=600)

    with pytest.raises(InsufficientFunds):
        hold_create(account=wallet, amount=401)

    assert _fresh(wallet).held == 600
    assert Hold.objects.count() == 1


def test_hold_on_a_frozen_account_is_refused(wallet: Account) -> None:
    account_freeze(account=wallet, reason="KYC review")

    with pytest.raises(AccountInactive):
        hold_create(account=wallet, amount=100)

    assert not Hold.objects.exists()


@pytest.mark.parametrize("amount", [0, -5, 1.5, True, "100"])
def test_hold_amount_must_be_a_positive_whole_number(wallet: Account, amount: object) -> None:
    with pytest.raises(ValidationError) as refused:
        hold_create(account=wallet, amount=amount)  # type: ignore[arg-type]

    assert refused.value.param == "amount"


@pytest.mark.parametrize("description", bad_text(200))
def test_hold_description_must_be_storable_text(wallet: Account, description: Any) -> None:
    audit_rows_before = AuditLog.objects.count()

    with pytest.raises(ValidationError) as refused:
        hold_create(account=wallet, amount=100, description=description)

    assert refused.value.param == "description"
    assert not Hold.objects.exists()
    assert _fresh(wallet).held == 0
    assert AuditLog.objects.count() == audit_rows_before


def test_hold_create_writes_an_audit_row(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300)

    row = _audit("hold.created", hold)
    assert row.old_values == {}
    assert row.new_values["status"] == "active"
    assert row.new_values["amount"] == 300
    assert row.new_values["account"] == wallet.public_id


# --- release --------------------------------------------------------------------------------


def test_release_gives_the_funds_back(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300)

    released = hold_release(hold=hold, reason="payout canceled")

    assert released.status == HoldStatus.RELEASED
    assert released.closed_at is not None
    _fresh(wallet)
    assert (wallet.balance, wallet.held, wallet.available) == (1_000, 0, 1_000)


def test_release_writes_an_audit_row_with_the_reason(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300)

    hold_release(hold=hold, reason="payout canceled")

    row = _audit("hold.released", hold)
    assert (row.old_values["status"], row.new_values["status"]) == ("active", "released")
    assert row.changed_fields == ["status"]
    assert row.reason == "payout canceled"


@pytest.mark.parametrize("reason", bad_text(500))
def test_release_reason_must_be_storable_text(wallet: Account, reason: Any) -> None:
    hold = hold_create(account=wallet, amount=300)

    with pytest.raises(ValidationError) as refused:
        hold_release(hold=hold, reason=reason)

    assert refused.value.param == "reason"
    hold.refresh_from_db()
    assert hold.status == HoldStatus.ACTIVE
    assert _fresh(wallet).held == 300


def test_an_expired_hold_not_yet_swept_can_still_be_released(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300, expires_at=timezone.now() - timedelta(1))

    assert hold_release(hold=hold).status == HoldStatus.RELEASED
    assert _fresh(wallet).held == 0


def test_releasing_twice_is_refused(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300)
    hold_release(hold=hold)

    with pytest.raises(InvalidState):
        hold_release(hold=hold)

    assert _fresh(wallet).held == 0
    assert AuditLog.objects.filter(action="hold.released").count() == 1


def test_releasing_a_captured_hold_is_refused(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=300)
    hold_capture(hold=hold, destination=payee)

    with pytest.raises(InvalidState):
        hold_release(hold=hold)


# --- capture --------------------------------------------------------------------------------


def test_full_capture_moves_the_held_amount(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=300)

    captured = hold_capture(hold=hold, destination=payee)

    assert (captured.status, captured.captured_amount) == (HoldStatus.CAPTURED, 300)
    _fresh(wallet)
    assert (wallet.balance, wallet.held, wallet.available) == (700, 0, 700)
    assert _fresh(payee).balance == 300


def test_partial_capture_releases_the_remainder(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=500)

    captured = hold_capture(hold=hold, destination=payee, amount=200)

    assert (captured.status, captured.captured_amount) == (HoldStatus.CAPTURED, 200)
    _fresh(wallet)
    assert (wallet.balance, wallet.held, wallet.available) == (800, 0, 800)
    assert _fresh(payee).balance == 200


def test_capture_posts_a_hold_capture_ledger_transaction(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=500)

    captured = hold_capture(hold=hold, destination=payee, amount=200)

    ledger_transaction = captured.ledger_transaction
    assert ledger_transaction is not None
    assert ledger_transaction.kind == LedgerTransactionKind.HOLD_CAPTURE
    entries = ledger_transaction.entries.order_by("pk")
    assert [(e.account_id, e.amount, e.balance_after) for e in entries] == [
        (wallet.pk, -200, 800),
        (payee.pk, 200, 200),
    ]


def test_capture_to_a_system_account(wallet: Account) -> None:
    fees = system_account_get(currency="USD", purpose=SystemPurpose.PLATFORM_FEES)
    hold = hold_create(account=wallet, amount=300)

    hold_capture(hold=hold, destination=fees, amount=50)

    assert _fresh(fees).balance == 50
    assert _fresh(wallet).available == 950


def test_capture_writes_an_audit_row(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=500)

    captured = hold_capture(hold=hold, destination=payee, amount=200)

    row = _audit("hold.captured", hold)
    assert (row.old_values["status"], row.new_values["status"]) == ("active", "captured")
    assert row.new_values["captured_amount"] == 200
    assert captured.ledger_transaction is not None
    assert row.new_values["ledger_transaction"] == captured.ledger_transaction.public_id


@pytest.mark.parametrize("amount", [0, 501, -1, 1.5])
def test_capture_amount_must_be_within_the_hold(
    wallet: Account, payee: Account, amount: object
) -> None:
    hold = hold_create(account=wallet, amount=500)

    with pytest.raises(ValidationError):
        hold_capture(hold=hold, destination=payee, amount=amount)  # type: ignore[arg-type]

    hold.refresh_from_db()
    assert hold.status == HoldStatus.ACTIVE
    assert _fresh(wallet).held == 500


def test_capture_to_another_merchants_wallet_is_refused(wallet: Account) -> None:
    stranger = AccountFactory.create()
    hold = hold_create(account=wallet, amount=300)

    with pytest.raises(ValidationError) as refused:
        hold_capture(hold=hold, destination=stranger)

    assert refused.value.code == "resource_missing"


def test_capture_to_another_currency_is_refused(wallet: Account) -> None:
    euros = AccountFactory.create(merchant=wallet.merchant, currency="EUR")
    hold = hold_create(account=wallet, amount=300)

    with pytest.raises(ValidationError):
        hold_capture(hold=hold, destination=euros)


def test_capture_to_the_held_account_itself_is_refused(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300)

    with pytest.raises(ValidationError):
        hold_capture(hold=hold, destination=wallet)


def test_capturing_a_released_hold_is_refused(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=300)
    hold_release(hold=hold)

    with pytest.raises(InvalidState):
        hold_capture(hold=hold, destination=payee)

    assert _fresh(payee).balance == 0


def test_capturing_an_expired_hold_is_refused(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=300, expires_at=timezone.now() - timedelta(1))

    with pytest.raises(InvalidState) as refused:
        hold_capture(hold=hold, destination=payee)

    assert refused.value.code == "hold_expired"
    hold.refresh_from_db()
    assert (hold.status, hold.ledger_transaction) == (HoldStatus.ACTIVE, None)
    assert (_fresh(wallet).balance, _fresh(wallet).held, _fresh(payee).balance) == (1_000, 300, 0)
    assert not AuditLog.objects.filter(action="hold.captured").exists()


def test_a_hold_not_yet_expired_can_be_captured(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=300, expires_at=timezone.now() + timedelta(1))

    assert hold_capture(hold=hold, destination=payee).status == HoldStatus.CAPTURED


# --- expiry ---------------------------------------------------------------------------------


def test_due_hold_expires(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300, expires_at=timezone.now() - timedelta(1))

    expired = hold_expire(hold=hold)

    assert expired.status == HoldStatus.EXPIRED
    assert _fresh(wallet).available == 1_000


def test_hold_not_yet_due_does_not_expire(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300, expires_at=timezone.now() + timedelta(hours=1))

    with pytest.raises(InvalidState):
        hold_expire(hold=hold)

    hold.refresh_from_db()
    assert hold.status == HoldStatus.ACTIVE


def test_hold_expire_compares_with_the_time_it_is_given(wallet: Account) -> None:
    expires_at = timezone.now() + timedelta(hours=1)
    hold = hold_create(account=wallet, amount=300, expires_at=expires_at)

    with pytest.raises(InvalidState):
        hold_expire(hold=hold, now=expires_at - timedelta(seconds=1))
    expired = hold_expire(hold=hold, now=expires_at)

    assert expired.status == HoldStatus.EXPIRED


def test_hold_past_due_does_not_expire_at_an_earlier_given_time(wallet: Account) -> None:
    expires_at = timezone.now() - timedelta(minutes=1)
    hold = hold_create(account=wallet, amount=300, expires_at=expires_at)

    with pytest.raises(InvalidState):
        hold_expire(hold=hold, now=expires_at - timedelta(minutes=1))

    hold.refresh_from_db()
    assert hold.status == HoldStatus.ACTIVE


def test_hold_without_expiry_does_not_expire(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300)

    with pytest.raises(InvalidState):
        hold_expire(hold=hold)


def test_expire_writes_an_audit_row(wallet: Account) -> None:
    hold = hold_create(account=wallet, amount=300, expires_at=timezone.now() - timedelta(1))

    hold_expire(hold=hold)

    row = _audit("hold.expired", hold)
    assert (row.old_values["status"], row.new_values["status"]) == ("active", "expired")


def test_holds_expire_due_expires_due_holds_and_skips_the_rest(wallet: Account) -> None:
    now = timezone.now()
    due = hold_create(account=wallet, amount=100, expires_at=now - timedelta(minutes=1))
    also_due = hold_create(account=wallet, amount=100, expires_at=now - timedelta(days=1))
    later = hold_create(account=wallet, amount=100, expires_at=now + timedelta(minutes=1))
    open_ended = hold_create(account=wallet, amount=100)
    released = hold_create(account=wallet, amount=100, expires_at=now - timedelta(minutes=1))
    hold_release(hold=released)

    count = holds_expire_due(now=now)

    assert count == 2
    statuses = dict(Hold.objects.values_list("public_id", "status"))
    assert statuses == {
        due.public_id: HoldStatus.EXPIRED,
        also_due.public_id: HoldStatus.EXPIRED,
        later.public_id: HoldStatus.ACTIVE,
        open_ended.public_id: HoldStatus.ACTIVE,
        released.public_id: HoldStatus.RELEASED,
    }
    assert _fresh(wallet).held == 200


def test_holds_expire_due_expires_what_is_due_at_the_time_it_is_given(wallet: Account) -> None:
    soon = hold_create(account=wallet, amount=100, expires_at=timezone.now() + timedelta(hours=1))

    assert holds_expire_due(now=timezone.now() + timedelta(hours=2)) == 1

    soon.refresh_from_db()
    assert soon.status == HoldStatus.EXPIRED


def test_holds_expire_due_logs_a_failing_hold_and_goes_on(
    wallet: Account, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    past = timezone.now() - timedelta(minutes=1)
    broken = hold_create(account=wallet, amount=100, expires_at=past)
    fine = hold_create(account=wallet, amount=200, expires_at=past)
    close = holds._hold_close

    def close_unless_broken(*, hold: Hold, **kwargs: Any) -> Hold:
        if hold.pk == broken.pk:
            raise RuntimeError("disk on fire")
        return close(hold=hold, **kwargs)

    monkeypatch.setattr(holds, "_hold_close", close_unless_broken)

    with caplog.at_level(logging.ERROR, logger="ledger.holds"):
        assert holds_expire_due() == 1

    statuses = dict(Hold.objects.values_list("public_id", "status"))
    assert statuses == {broken.public_id: HoldStatus.ACTIVE, fine.public_id: HoldStatus.EXPIRED}
    assert _fresh(wallet).held == 100
    (record,) = caplog.records
    assert broken.public_id in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_holds_expire_due_with_nothing_due_expires_nothing(wallet: Account) -> None:
    hold_create(account=wallet, amount=100, expires_at=timezone.now() + timedelta(hours=1))

    assert holds_expire_due() == 0


def test_expiry_is_scheduled_every_minute() -> None:
    entries = [
        entry
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == expire_holds.name
    ]
    assert expire_holds.name == "ledger.tasks.expire_holds"
    assert [entry["schedule"] for entry in entries] == [timedelta(minutes=1)]


# --- invariants -----------------------------------------------------------------------------


def test_invariants_hold_after_every_kind_of_hold_ending(wallet: Account, payee: Account) -> None:
    fees = system_account_get(currency="USD", purpose=SystemPurpose.PLATFORM_FEES)
    past = timezone.now() - timedelta(minutes=1)
    hold_release(hold=hold_create(account=wallet, amount=100))
    hold_capture(hold=hold_create(account=wallet, amount=200), destination=payee)
    hold_capture(hold=hold_create(account=wallet, amount=200), destination=fees, amount=50)
    hold_create(account=wallet, amount=100, expires_at=past)
    hold_create(account=wallet, amount=150)  # stays active
    holds_expire_due()

    assert invariant_violations() == {}
    _fresh(wallet)
    assert (wallet.balance, wallet.held) == (750, 150)


def test_capture_from_a_frozen_account_is_refused(wallet: Account, payee: Account) -> None:
    hold = hold_create(account=wallet, amount=300)
    account_freeze(account=wallet, reason="fraud suspected")

    with pytest.raises(AccountInactive):
        hold_capture(hold=hold, destination=payee)

    hold.refresh_from_db()
    assert hold.status == HoldStatus.ACTIVE
    assert _fresh(payee).balance == 0
