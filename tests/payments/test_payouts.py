"""Payouts through the services, against the provider simulator in-process (tasks eager):
the hold at creation, `ba_ok` paid and `ba_fail` failed with the balance and available
exact afterwards, refusals that write and send nothing, bank tokens only, and the rules
PostgreSQL holds."""

from io import StringIO
from itertools import product
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, transaction

from accounts.models import Account, HoldStatus
from accounts.services import merchant_default_provider_set
from audit.models import AuditLog, Event
from core.exceptions import AccountInactive, InsufficientFunds, NotFound, ValidationError
from ledger.reconciliation import reconcile_ledger
from payments.models import AttemptKind, AttemptStatus, PaymentAttempt, Payout, PayoutStatus
from payments.payouts import payout_create
from payments.providers.registry import PROVIDERS
from payments.transitions import PAYOUT_TRANSITIONS, payout_transition
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations
from tests.payments.held_helpers import (
    active_holds,
    clearing_balance,
    janitor_round,
    provider_objects,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


@pytest.fixture(params=PROVIDERS)
def wallet(request: pytest.FixtureRequest) -> Account:
    merchant = merchant_default_provider_set(
        merchant=MerchantFactory.create(), provider=request.param
    )
    return AccountFactory.create(merchant=merchant, currency="USD", balance=10_000)


def _payout(wallet: Account, capture: Any, **fields: Any) -> Payout:
    assert wallet.merchant is not None
    with capture(execute=True):
        payout = payout_create(
            merchant=wallet.merchant,
            source=wallet,
            **{"amount": 2_500, "currency": "usd", "destination": "ba_ok", **fields},
        )
    payout.refresh_from_db()
    return payout


def _assert_clean() -> None:
    assert invariant_violations() == {}
    run = reconcile_ledger()
    assert (run.status, run.breaks) == ("ok", [])


@pytest.mark.parametrize(
    ("destination", "status", "balance", "clearing"),
    [("ba_ok", PayoutStatus.PAID, 7_500, 2_500), ("ba_fail", PayoutStatus.FAILED, 10_000, 0)],
)
def test_a_payout_is_held_at_once_then_paid_or_released(
    wallet: Account,
    simulator_admin: httpx.Client,
    django_capture_on_commit_callbacks: Any,
    destination: str,
    status: str,
    balance: int,
    clearing: int,
) -> None:
    clearing_before = clearing_balance()
    payout = _payout(wallet, django_capture_on_commit_callbacks, destination=destination)

    wallet.refresh_from_db()
    attempt = payout.attempts.get()
    assert (payout.status, payout.currency, payout.destination) == ("pending", "USD", destination)
    assert (wallet.balance, wallet.available, wallet.held) == (10_000, 7_500, 2_500)
    assert (attempt.kind, attempt.status) == (AttemptKind.PAYOUT, AttemptStatus.PENDING)
    assert payout.provider_reference == attempt.provider_reference != ""
    assert not Event.objects.filter(object_id=payout.public_id).exists()
    assert AuditLog.objects.filter(action="payout.created", object_id=payout.public_id).exists()

    assert janitor_round(django_capture_on_commit_callbacks) == 1

    payout.refresh_from_db()
    wallet.refresh_from_db()
    assert payout.status == status
    assert (wallet.balance, wallet.available, wallet.held) == (balance, balance, 0)
    assert clearing_balance() - clearing_before == clearing
    assert payout.hold.status == (
        HoldStatus.CAPTURED if status == PayoutStatus.PAID else HoldStatus.RELEASED
    )
    assert (payout.ledger_transaction is not None) == (status == PayoutStatus.PAID)
    assert (payout.failure_code != "") == (status == PayoutStatus.FAILED)
    assert list(
        Event.objects.filter(object_id=payout.public_id).values_list("type", flat=True)
    ) == [f"payout.{status}"]
    assert len(provider_objects(simulator_admin, payout.provider, "payouts", attempt)) == 1
    _assert_clean()


def test_more_than_available_is_402_and_nothing_is_written_or_sent(
    wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    _payout(wallet, django_capture_on_commit_callbacks, amount=8_000)
    attempts = PaymentAttempt.objects.count()
    with pytest.raises(InsufficientFunds, match="2000 available"):
        _payout(wallet, django_capture_on_commit_callbacks, amount=2_001)
    wallet.refresh_from_db()
    assert (wallet.available, active_holds(wallet)) == (2_000, 1)
    assert (Payout.objects.count(), PaymentAttempt.objects.count()) == (1, attempts)


@pytest.mark.parametrize(
    "destination",
    [
        "DE89370400440532013000",  # an IBAN
        "000123456789",  # an account number
        "ba_",
        "ba_ok ",
        "ba-ok",
        "BA_OK",
        "ba_ok\n",
        "",
    ],
)
def test_only_a_bank_token_is_a_destination(
    wallet: Account, django_capture_on_commit_callbacks: Any, destination: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _payout(wallet, django_capture_on_commit_callbacks, destination=destination)
    assert (refused.value.code, refused.value.param) == ("invalid_destination", "destination")
    if len(destination) > 8:  # an account number or IBAN is never echoed back
        assert destination not in refused.value.message
    assert Payout.objects.count() == 0
    wallet.refresh_from_db()
    assert wallet.held == 0


def test_postgresql_refuses_a_destination_that_is_no_bank_token(
    wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    payout = _payout(wallet, django_capture_on_commit_callbacks)
    with pytest.raises(IntegrityError), transaction.atomic():
        Payout.objects.filter(pk=payout.pk).update(destination="DE89370400440532013000")


def test_another_merchants_or_an_inactive_account_is_refused(
    wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    stranger = MerchantFactory.create()
    with pytest.raises(NotFound):
        payout_create(
            merchant=stranger, source=wallet, amount=1, currency="USD", destination="ba_ok"
        )
    with pytest.raises(ValidationError) as mismatch:
        _payout(wallet, django_capture_on_commit_callbacks, currency="EUR")
    assert mismatch.value.code == "currency_mismatch"
    Account.objects.filter(pk=wallet.pk).update(status="frozen")
    wallet.refresh_from_db()
    with pytest.raises(AccountInactive):
        _payout(wallet, django_capture_on_commit_callbacks)
    assert Payout.objects.count() == 0


STATUSES = list(PayoutStatus.values)


@pytest.mark.parametrize(("old", "new"), list(product(STATUSES, STATUSES)))
def test_the_payout_transition_table_refuses_every_other_move(old: str, new: str) -> None:
    payout = Payout(public_id="po_x", status=old)
    if new in PAYOUT_TRANSITIONS[old]:
        payout_transition(payout, new)
        assert payout.status == new
    else:
        with pytest.raises(Exception, match=f"is {old}; it cannot become {new}"):
            payout_transition(payout, new)


def test_postgresql_refuses_a_paid_payout_going_back(
    wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    payout = _payout(wallet, django_capture_on_commit_callbacks)
    janitor_round(django_capture_on_commit_callbacks)
    refused = pytest.raises(DatabaseError, match="cannot go from paid to pending")
    with refused, transaction.atomic():
        Payout.objects.filter(pk=payout.pk).update(
            status=PayoutStatus.PENDING, ledger_transaction=None
        )
    with pytest.raises(IntegrityError), transaction.atomic():  # a payout attempt's owner
        PaymentAttempt.objects.create(kind=AttemptKind.PAYOUT, provider="stripe", currency="USD")


def test_recover_attempts_runs_one_janitor_round_by_hand(
    wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    payout = _payout(wallet, django_capture_on_commit_callbacks)
    output = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("recover_attempts", stdout=output)
    assert output.getvalue() == "1 attempt ended.\n"
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert AuditLog.objects.filter(
        object_id=payout.public_id, action="payout.paid", actor="command:recover_attempts"
    ).exists()
