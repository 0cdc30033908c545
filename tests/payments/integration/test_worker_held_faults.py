"""Refunds and payouts through trouble, with real workers on Redis (database 10, after
test_worker_refunds.py's module is done with it: these tests start workers of their own,
and no other may take their tasks) and the simulator over HTTP: a worker SIGKILLed in the
middle of the provider call, and an answer lost for good (no retry inside the call or by
the task: an unknown outcome and a dead letter) that the janitor resolves. Each ends with
exactly one refund or payout at the provider, its hold closed, the ledger reconciled."""

import pytest

from accounts.models import Account, HoldStatus
from audit.models import DeadLetter, DeadLetterStatus
from payments.models import (
    AttemptStatus,
    Payment,
    PaymentAttempt,
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
)
from payments.payouts import payout_create
from payments.providers.registry import PROVIDERS
from payments.refunds import refund_create
from tests.factories import fund
from tests.payments.integration.conftest import (
    MakeMerchant,
    SimulatorProcess,
    Worker,
    Workers,
    pay,
    wait_for_attempt,
    wait_for_status,
)
from tests.payments.integration.held import (
    LATENCY_MS,
    assert_ended_once,
    assert_refunded_at_provider,
    janitor_until,
    kill_during_call,
    statuses_are,
)
from tests.workers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _dead_letter_of(attempt: PaymentAttempt) -> DeadLetter:
    """The dead letter the task records once the attempt's outcome stays unknown: written
    just after the attempt itself, so waited for."""
    letters = DeadLetter.objects.filter(object_id=attempt.public_id)
    wait_until(letters.exists, seconds=10, what="the attempt's dead letter")
    return letters.get()


@pytest.fixture(scope="module")
def broker_url() -> str:
    return "redis://127.0.0.1:6379/10"


def _paid(merchant_of: MakeMerchant, provider: str, worker: Worker) -> tuple[Payment, Account]:
    merchant, wallet = merchant_of(provider)
    payment = pay(merchant, wallet)
    wait_for_status([payment], PaymentStatus.SUCCEEDED, worker)
    return payment, wallet


def _refund(payment: Payment, amount: int) -> Refund:
    return refund_create(merchant=payment.merchant, payment=payment, amount=amount)


# Workers that neither retry inside a call nor in the task: a lost answer stays unknown,
# becomes a dead letter, and is the janitor's to resolve.
NO_RETRIES = {"PROVIDER_MAX_NETWORK_RETRIES": "0", "PAYMENT_TASK_MAX_RETRIES": "0"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_worker_killed_during_the_refund_call_refunds_once(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, workers: Workers
) -> None:
    first = workers.start()
    payment, wallet = _paid(merchant_of, provider, first)
    simulator.faults(latency_ms=LATENCY_MS)
    refund = _refund(payment, 2_000)
    kill_during_call(first, simulator, calls_before=1)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING
    assert refund.attempts.get().tries == 0  # killed before it recorded anything

    # The next worker: the janitor finds the attempt quiet and asks the provider by its
    # key (or calls again with it, if the call never got there).
    second = workers.start()
    janitor_until(statuses_are([refund], RefundStatus.SUCCEEDED), "the refund", second)

    refund.refresh_from_db()
    wallet.refresh_from_db()
    assert refund.hold.status == HoldStatus.CAPTURED
    assert (wallet.balance, wallet.available) == (500, 500)
    assert_ended_once(simulator, [refund])
    assert_refunded_at_provider(payment, 2_000)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unknown_refund_outcome_is_resolved_by_the_janitor(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, workers: Workers
) -> None:
    worker = workers.start(**NO_RETRIES)
    payment, _ = _paid(merchant_of, provider, worker)
    simulator.faults(drop_after_commit=1)
    refund = _refund(payment, 1_200)
    attempt = refund.attempts.get()
    wait_for_attempt(attempt, lambda a: a.status == AttemptStatus.UNKNOWN)
    assert attempt.provider_reference == ""  # the answer never arrived
    dead = _dead_letter_of(attempt)
    refund.refresh_from_db()
    assert (refund.status, refund.hold.status) == (RefundStatus.PENDING, HoldStatus.ACTIVE)

    janitor_until(statuses_are([refund], RefundStatus.SUCCEEDED), "the refund", worker)

    dead.refresh_from_db()
    assert dead.status == DeadLetterStatus.RESOLVED
    assert_ended_once(simulator, [refund])
    assert_refunded_at_provider(payment, 1_200)


def _funded(merchant_of: MakeMerchant, provider: str) -> Account:
    _, wallet = merchant_of(provider)
    fund(wallet, 10_000)
    return wallet


def _payout(wallet: Account, amount: int = 4_000) -> Payout:
    assert wallet.merchant is not None
    return payout_create(
        merchant=wallet.merchant, source=wallet, amount=amount, currency="USD", destination="ba_ok"
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_worker_killed_during_the_payout_call_pays_out_once(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, workers: Workers
) -> None:
    wallet = _funded(merchant_of, provider)
    first = workers.start()
    simulator.faults(latency_ms=LATENCY_MS)
    payout = _payout(wallet)
    kill_during_call(first, simulator, calls_before=0)
    payout.refresh_from_db()
    assert (payout.status, payout.attempts.get().tries) == (PayoutStatus.PENDING, 0)

    second = workers.start()
    janitor_until(statuses_are([payout], PayoutStatus.PAID), "the payout", second)

    payout.refresh_from_db()
    wallet.refresh_from_db()
    assert payout.hold.status == HoldStatus.CAPTURED
    assert (wallet.balance, wallet.available, wallet.held) == (6_000, 6_000, 0)
    assert_ended_once(simulator, [payout])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unknown_payout_outcome_is_resolved_by_the_janitor(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, workers: Workers
) -> None:
    wallet = _funded(merchant_of, provider)
    worker = workers.start(**NO_RETRIES)
    simulator.faults(drop_after_commit=1)
    payout = _payout(wallet)
    attempt = payout.attempts.get()
    wait_for_attempt(attempt, lambda a: a.status == AttemptStatus.UNKNOWN)
    assert attempt.provider_reference == ""
    dead = _dead_letter_of(attempt)

    janitor_until(statuses_are([payout], PayoutStatus.PAID), "the payout", worker)

    dead.refresh_from_db()
    wallet.refresh_from_db()
    assert dead.status == DeadLetterStatus.RESOLVED
    assert (wallet.balance, wallet.available, wallet.held) == (6_000, 6_000, 0)
    assert_ended_once(simulator, [payout])
