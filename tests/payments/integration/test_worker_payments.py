"""Every test payment method of SPEC §4.6 on both providers, manual and partial capture,
cancel, the authorization deadline and failover, through a real worker and the simulator
over HTTP."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from ledger.models import LedgerTransaction, LedgerTransactionKind
from payments import tasks
from payments.models import AttemptKind, AttemptStatus, CaptureMethod, Payment, PaymentStatus
from payments.payments import payment_cancel, payment_capture
from payments.providers.circuit import circuit_force
from payments.providers.registry import PROVIDERS
from tests.payments.integration.conftest import (
    MakeMerchant,
    SimulatorProcess,
    Worker,
    assert_reconciled,
    ledger_postings,
    pay,
    wait_for_status,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker"),
    pytest.mark.slow,
]

# SPEC §4.6: the payment's end state, and for a decline its class and code.
OUTCOMES = {
    "pm_card_visa": (PaymentStatus.SUCCEEDED, "", ""),
    "pm_card_declined": (PaymentStatus.FAILED, "hard", "card_declined"),
    "pm_card_insufficient_funds": (PaymentStatus.FAILED, "soft", "insufficient_funds"),
    "pm_card_expired": (PaymentStatus.FAILED, "hard", "expired_card"),
    "pm_card_fraud": (PaymentStatus.FAILED, "fraud", "fraudulent"),
    "pm_card_timeout": (PaymentStatus.SUCCEEDED, "", ""),
    "pm_card_flaky": (PaymentStatus.SUCCEEDED, "", ""),
    "pm_card_async": (PaymentStatus.SUCCEEDED, "", ""),
}
AMOUNT = 2_500  # conftest.pay's


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_test_payment_method_ends_as_spec_names_it(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    merchant, wallet = merchant_of(provider)
    payments = {method: pay(merchant, wallet, method) for method in OUTCOMES}
    asynchronous = payments.pop("pm_card_async")

    wait_for_status(
        list(payments.values()),
        {payment.pk: OUTCOMES[method][0] for method, payment in payments.items()},
        worker,
    )
    # pm_card_async is accepted, and stays processing until someone asks the provider
    # again: the janitor, once the simulator has settled it.
    wait_for_status([asynchronous], PaymentStatus.PROCESSING, worker)
    attempt = asynchronous.attempts.get()
    assert (attempt.status, attempt.provider_reference != "") == (AttemptStatus.PENDING, True)
    tasks.recover_attempts.delay()
    wait_for_status([asynchronous], PaymentStatus.SUCCEEDED, worker)
    payments["pm_card_async"] = asynchronous

    for method, payment in payments.items():
        status, decline_class, code = OUTCOMES[method]
        assert payment.provider == provider
        assert (payment.status, payment.decline_class, payment.failure_code) == (
            status,
            decline_class,
            code,
        ), method
        succeeded = status == PaymentStatus.SUCCEEDED
        assert simulator.charges(provider, payment) == int(succeeded), method
        assert ledger_postings(payment) == int(succeeded), method
        if succeeded:
            assert (payment.amount_captured, payment.net) == (AMOUNT, AMOUNT)
            assert payment.provider_reference
    assert_reconciled()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_manual_capture_in_part_and_cancel(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    merchant, wallet = merchant_of(provider)
    captured = pay(merchant, wallet, "pm_card_visa", capture_method=CaptureMethod.MANUAL)
    canceled = pay(merchant, wallet, "pm_card_visa", capture_method=CaptureMethod.MANUAL)
    wait_for_status([captured, canceled], PaymentStatus.REQUIRES_CAPTURE, worker)
    assert captured.amount_capturable == AMOUNT and captured.capture_before is not None
    assert ledger_postings(captured) == 0

    payment_capture(payment=captured, amount=1_500)
    payment_cancel(payment=canceled)

    wait_for_status([captured], PaymentStatus.SUCCEEDED, worker)
    wait_for_status([canceled], PaymentStatus.CANCELED, worker)
    assert (captured.amount_captured, captured.amount_capturable, captured.net) == (1_500, 0, 1_500)
    assert ledger_postings(captured) == 1 and ledger_postings(canceled) == 0
    wallet.refresh_from_db()
    assert wallet.balance == 1_500
    assert simulator.provider_status(provider, canceled.provider_reference) in (
        "canceled",
        "cancelled",
    )
    for payment in (captured, canceled):
        assert simulator.charges(provider, payment) == 1
        kinds = [a.kind for a in payment.attempts.order_by("pk")]
        assert kinds[0] == AttemptKind.AUTHORIZE and len(kinds) == 2
        assert {a.status for a in payment.attempts.all()} == {AttemptStatus.SUCCEEDED}
    assert_reconciled()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_authorization_past_its_deadline_is_canceled_and_released(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    merchant, wallet = merchant_of(provider)
    due = pay(merchant, wallet, "pm_card_visa", capture_method=CaptureMethod.MANUAL)
    not_due = pay(merchant, wallet, "pm_card_visa", capture_method=CaptureMethod.MANUAL)
    wait_for_status([due, not_due], PaymentStatus.REQUIRES_CAPTURE, worker)
    assert due.capture_before is not None
    Payment.objects.filter(pk=due.pk).update(capture_before=due.capture_before - timedelta(8))

    tasks.cancel_expired_authorizations.delay()

    wait_for_status([due], PaymentStatus.CANCELED, worker)
    assert simulator.provider_status(provider, due.provider_reference) in ("canceled", "cancelled")
    not_due.refresh_from_db()
    assert not_due.status == PaymentStatus.REQUIRES_CAPTURE
    cancel = due.attempts.get(kind=AttemptKind.CANCEL)
    assert cancel.status == AttemptStatus.SUCCEEDED
    assert ledger_postings(due) == 0
    assert_reconciled()


def test_a_new_payment_fails_over_while_the_default_providers_circuit_is_open(
    merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    merchant, wallet = merchant_of("stripe")
    # As an operator would, from another process: the state is in Redis, which the
    # worker and this process share.
    call_command("provider_circuit", "--provider", "stripe", "--open")

    moved = pay(merchant, wallet, "pm_card_visa")
    circuit_force("stripe", state="closed")
    back = pay(merchant, wallet, "pm_card_visa")

    wait_for_status([moved, back], PaymentStatus.SUCCEEDED, worker)
    attempt = moved.attempts.get()
    assert (moved.provider, attempt.provider) == ("adyen", "adyen")
    assert attempt.routing_reason == "failover: stripe circuit open"
    assert (simulator.charges("adyen", moved), simulator.charges("stripe", moved)) == (1, 0)
    assert (back.provider, back.attempts.get().routing_reason) == ("stripe", "default")
    assert simulator.charges("stripe", back) == 1
    assert (
        LedgerTransaction.objects.filter(kind=LedgerTransactionKind.PAYMENT).count()
        == Payment.objects.filter(status=PaymentStatus.SUCCEEDED).count()
        == 2
    )
    assert_reconciled()


def _sessions_opened() -> int:
    """Sessions PostgreSQL has opened on the test database so far, once its statistics
    stop moving (backends report them within about a second)."""
    last, steady_since = -1, time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
            (now,) = cursor.fetchone()
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= 1.5:
            return int(now)
        time.sleep(0.25)
    pytest.fail(f"PostgreSQL's session count did not settle (last {last})")


def test_the_worker_keeps_its_database_sessions_between_tasks(
    merchant_of: MakeMerchant, worker: Worker
) -> None:
    merchant, wallet = merchant_of("stripe")
    before = _sessions_opened()

    payments = [pay(merchant, wallet) for _ in range(12)]

    wait_for_status(payments, PaymentStatus.SUCCEEDED, worker)
    # At most one per thread of the worker (4), not one or two per task (Celery's own
    # Django fixup closes every connection around every task unless told not to).
    assert _sessions_opened() - before <= 4
