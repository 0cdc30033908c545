"""Refunds through the services, against the provider simulator in-process (tasks eager):
admission (what is left, the payment's status, the funds on its account), the hold, the
provider's answer captured into provider clearing or released, events, audit rows, and the
rules PostgreSQL holds."""

from itertools import product
from typing import Any

import httpx
import pytest
from django.db import DatabaseError, IntegrityError, transaction

from accounts.models import Account, HoldStatus
from accounts.services import merchant_default_provider_set
from audit.models import AuditLog, Event
from core.exceptions import InsufficientFunds, InvalidState, NotFound, ValidationError
from ledger.reconciliation import reconcile_ledger
from payments.attempts import attempt_result_apply
from payments.models import (
    AttemptKind,
    AttemptStatus,
    CaptureMethod,
    Payment,
    PaymentAttempt,
    Refund,
    RefundStatus,
)
from payments.payments import payment_create
from payments.providers.base import ProviderResult, ResultStatus
from payments.providers.registry import PROVIDERS
from payments.refunds import refund_create
from payments.services import transfer_create
from payments.transitions import REFUND_TRANSITIONS, refund_transition
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations
from tests.payments.held_helpers import (
    active_holds,
    clearing_balance,
    janitor_round,
    provider_objects,
    succeeded_payment,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


@pytest.fixture(params=PROVIDERS)
def wallet(request: pytest.FixtureRequest) -> Account:
    merchant = merchant_default_provider_set(
        merchant=MerchantFactory.create(), provider=request.param
    )
    return AccountFactory.create(merchant=merchant, currency="USD")


@pytest.fixture
def payment(wallet: Account, django_capture_on_commit_callbacks: Any) -> Payment:
    return succeeded_payment(wallet, 10_000, django_capture_on_commit_callbacks)


def _refund(payment: Payment, capture: Any, **fields: Any) -> Refund:
    with capture(execute=True):
        refund = refund_create(merchant=payment.merchant, payment=payment, **fields)
    refund.refresh_from_db()
    return refund


def _assert_clean() -> None:
    assert invariant_violations() == {}
    run = reconcile_ledger()
    assert (run.status, run.breaks) == ("ok", [])


def test_a_full_refund_is_held_then_captured_into_provider_clearing(
    payment: Payment,
    wallet: Account,
    simulator_admin: httpx.Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    refund = _refund(payment, django_capture_on_commit_callbacks)

    # Admitted: the whole capture, counted on the payment, held on its account; the
    # provider has it, pending.
    payment.refresh_from_db()
    wallet.refresh_from_db()
    attempt = refund.attempts.get()
    assert wallet.merchant is not None
    assert (refund.status, refund.amount) == ("pending", 10_000)
    assert refund.provider == payment.provider == wallet.merchant.default_provider
    assert payment.amount_refunded == 10_000
    assert (wallet.balance, wallet.available) == (10_000, 0)
    assert (attempt.kind, attempt.status) == (AttemptKind.REFUND, AttemptStatus.PENDING)
    assert attempt.provider_reference and refund.provider_reference == attempt.provider_reference
    assert Event.objects.filter(object_id=refund.public_id).count() == 0  # none at creation
    assert AuditLog.objects.filter(action="refund.created", object_id=refund.public_id).exists()

    assert janitor_round(django_capture_on_commit_callbacks) == 1

    refund.refresh_from_db()
    wallet.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.ledger_transaction is not None
    assert refund.hold.status == HoldStatus.CAPTURED
    assert refund.hold.ledger_transaction_id == refund.ledger_transaction_id
    assert (wallet.balance, wallet.available, wallet.held) == (0, 0, 0)
    assert clearing_balance() == 0  # −10,000 at the capture, +10,000 at the refund
    assert payment.amount_refunded == 10_000
    assert list(
        Event.objects.filter(object_id=refund.public_id).values_list("type", flat=True)
    ) == ["refund.succeeded"]
    [found] = provider_objects(simulator_admin, refund.provider, "refunds", attempt)
    assert found["amount"] in (10_000, {"value": 10_000, "currency": "USD"})
    _assert_clean()


def test_partial_and_several_refunds_never_exceed_the_capture(
    payment: Payment, wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    first = _refund(payment, django_capture_on_commit_callbacks, amount=3_000, reason="duplicate")
    second = _refund(payment, django_capture_on_commit_callbacks, amount=2_000)
    with pytest.raises(ValidationError, match="5000 USD is left to refund") as refused:
        _refund(payment, django_capture_on_commit_callbacks, amount=5_001)
    assert (refused.value.code, refused.value.param) == ("amount_too_large", "amount")
    rest = _refund(payment, django_capture_on_commit_callbacks)  # what is left: 5,000
    with pytest.raises(ValidationError) as nothing_left:
        _refund(payment, django_capture_on_commit_callbacks, amount=1)
    assert nothing_left.value.code == "charge_already_refunded"

    janitor_round(django_capture_on_commit_callbacks)
    assert [r.amount for r in (first, second, rest)] == [3_000, 2_000, 5_000]
    assert first.reason == "duplicate"
    assert set(Refund.objects.filter(payment=payment).values_list("status", flat=True)) == {
        RefundStatus.SUCCEEDED
    }
    payment.refresh_from_db()
    wallet.refresh_from_db()
    assert (payment.amount_refunded, wallet.balance, wallet.available) == (10_000, 0, 0)
    _assert_clean()


def test_a_failed_refund_releases_its_hold_and_can_be_asked_again(
    payment: Payment,
    wallet: Account,
    simulator_admin: httpx.Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    simulator_admin.post("/_simulator/faults", json={"refund_failure": 1}).raise_for_status()
    refund = _refund(payment, django_capture_on_commit_callbacks, amount=4_000)
    janitor_round(django_capture_on_commit_callbacks)

    refund.refresh_from_db()
    payment.refresh_from_db()
    wallet.refresh_from_db()
    assert refund.status == RefundStatus.FAILED and refund.failure_code
    assert refund.ledger_transaction is None
    assert refund.hold.status == HoldStatus.RELEASED
    assert refund.attempts.get().status == AttemptStatus.FAILED
    assert payment.amount_refunded == 0  # given back: refundable again
    assert (wallet.balance, wallet.available, wallet.held) == (10_000, 10_000, 0)
    assert list(
        Event.objects.filter(object_id=refund.public_id).values_list("type", flat=True)
    ) == ["refund.failed"]

    again = _refund(payment, django_capture_on_commit_callbacks)
    janitor_round(django_capture_on_commit_callbacks)
    again.refresh_from_db()
    assert (again.amount, again.status) == (10_000, RefundStatus.SUCCEEDED)
    _assert_clean()


def test_no_funds_on_the_payments_account_is_402_and_nothing_is_written_or_sent(
    payment: Payment, wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    other = AccountFactory.create(merchant=wallet.merchant, currency="USD")
    assert wallet.merchant is not None
    transfer_create(merchant=wallet.merchant, source=wallet, destination=other, amount=9_500)
    attempts = PaymentAttempt.objects.count()

    with pytest.raises(InsufficientFunds) as refused:
        _refund(payment, django_capture_on_commit_callbacks, amount=1_000)

    assert refused.value.code == "insufficient_funds"
    payment.refresh_from_db()
    wallet.refresh_from_db()
    assert payment.amount_refunded == 0
    assert (Refund.objects.count(), PaymentAttempt.objects.count()) == (0, attempts)
    assert (wallet.held, active_holds(wallet)) == (0, 0)
    # 500 are there: a refund of them is admitted.
    assert _refund(payment, django_capture_on_commit_callbacks, amount=500).status == "pending"


def test_only_a_succeeded_payment_is_refunded(
    wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    assert wallet.merchant is not None
    with django_capture_on_commit_callbacks(execute=True):
        authorized = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=2_000,
            currency="USD",
            payment_method="pm_card_visa",
            capture_method=CaptureMethod.MANUAL,
        )
    with pytest.raises(InvalidState, match="is requires_capture; only a succeeded payment") as e:
        _refund(authorized, django_capture_on_commit_callbacks)
    assert (e.value.code, e.value.param) == ("payment_invalid_state", "payment")
    assert Refund.objects.count() == 0


def test_another_merchants_payment_is_not_found(payment: Payment) -> None:
    with pytest.raises(NotFound):
        refund_create(merchant=MerchantFactory.create(), payment=payment)


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"amount": 0}, "amount"), ({"amount": -5}, "amount"), ({"reason": "bored"}, "reason")],
)
def test_a_malformed_refund_is_refused(
    payment: Payment, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        refund_create(merchant=payment.merchant, payment=payment, **fields)
    assert refused.value.param == param
    assert Refund.objects.count() == 0


def test_an_answer_applied_twice_posts_once(
    payment: Payment, wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    refund = _refund(payment, django_capture_on_commit_callbacks, amount=1_000)
    attempt = refund.attempts.get()
    done = ProviderResult(
        status=ResultStatus.SUCCEEDED,
        reference=attempt.provider_reference,
        amount=1_000,
        currency="USD",
    )
    first = attempt_result_apply(attempt_id=attempt.pk, result=done)
    second = attempt_result_apply(attempt_id=attempt.pk, result=done)
    failed = attempt_result_apply(
        attempt_id=attempt.pk, result=ProviderResult(status=ResultStatus.FAILED)
    )

    assert first.attempt.status == second.attempt.status == failed.attempt.status == "succeeded"
    refund.refresh_from_db()
    wallet.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert wallet.balance == 9_000
    assert Event.objects.filter(object_id=refund.public_id).count() == 1
    _assert_clean()


def test_an_unknown_outcome_is_asked_again_never_taken_as_failed(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    refund = _refund(payment, django_capture_on_commit_callbacks, amount=1_000)
    attempt = refund.attempts.get()
    applied = attempt_result_apply(
        attempt_id=attempt.pk,
        result=ProviderResult(status=ResultStatus.UNKNOWN, failure_code="timeout"),
    )
    assert applied.retry
    refund.refresh_from_db()
    assert (applied.attempt.status, refund.status) == (AttemptStatus.UNKNOWN, "pending")
    assert refund.hold.status == HoldStatus.ACTIVE

    janitor_round(django_capture_on_commit_callbacks)  # retrieved by its reference
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED


STATUSES = list(RefundStatus.values)


@pytest.mark.parametrize(("old", "new"), list(product(STATUSES, STATUSES)))
def test_the_refund_transition_table_refuses_every_other_move(old: str, new: str) -> None:
    refund = Refund(public_id="re_x", status=old)
    if new in REFUND_TRANSITIONS[old]:
        refund_transition(refund, new)
        assert refund.status == new
    else:
        with pytest.raises(InvalidState, match=f"is {old}; it cannot become {new}"):
            refund_transition(refund, new)


def test_postgresql_holds_the_refund_rules(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    refund = _refund(payment, django_capture_on_commit_callbacks, amount=1_000)
    janitor_round(django_capture_on_commit_callbacks)
    refund.refresh_from_db()
    for status, fields in [
        (RefundStatus.PENDING, {}),
        (RefundStatus.FAILED, {"failure_code": "x", "ledger_transaction": None}),
    ]:
        with pytest.raises(DatabaseError, match="cannot go from"), transaction.atomic():
            Refund.objects.filter(pk=refund.pk).update(status=status, **fields)
    pending = _refund(payment, django_capture_on_commit_callbacks, amount=1_000)
    for ended in (RefundStatus.FAILED, RefundStatus.SUCCEEDED):
        with pytest.raises(IntegrityError), transaction.atomic():
            Refund.objects.filter(pk=pending.pk).update(status=ended)  # no code, no posting
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(amount_refunded=10_001)
    with pytest.raises(IntegrityError), transaction.atomic():  # a second attempt in flight
        PaymentAttempt.objects.create(
            refund=pending, kind=AttemptKind.REFUND, provider="stripe", currency="USD"
        )
    with pytest.raises(IntegrityError), transaction.atomic():  # a refund attempt's owner
        PaymentAttempt.objects.create(
            refund=pending,
            payment=payment,
            kind=AttemptKind.REFUND,
            provider="stripe",
            currency="USD",
            status=AttemptStatus.FAILED,
        )
