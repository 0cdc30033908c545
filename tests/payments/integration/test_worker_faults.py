"""An answer lost after the provider committed, and calls that time out, with a real worker
and the simulator over HTTP: each ends with one charge at the simulator, one ledger
posting, the payment succeeded and the ledger reconciled."""

import pytest

from payments.models import AttemptStatus, PaymentStatus
from payments.providers.registry import PROVIDERS
from tests.payments.integration.conftest import (
    READ_TIMEOUT,
    MakeMerchant,
    SimulatorProcess,
    Worker,
    assert_settled_once,
    pay,
    wait_for_attempt,
    wait_for_status,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_lost_after_the_provider_committed_is_asked_again_with_the_same_key(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    merchant, wallet = merchant_of(provider)
    simulator.faults(drop_after_commit=1)

    payment = pay(merchant, wallet)

    wait_for_status([payment], PaymentStatus.SUCCEEDED, worker)
    assert_settled_once(payment, provider, simulator)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_call_that_times_out_is_unknown_until_the_provider_answers_again(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    merchant, wallet = merchant_of(provider)
    # Slower than the worker's read timeout: the call times out after the provider acted
    # (the simulator charges after its delay).
    simulator.faults(latency_ms=int(READ_TIMEOUT * 1000) + 500)

    payment = pay(merchant, wallet)
    attempt = payment.attempts.get()
    wait_for_attempt(attempt, lambda a: a.status == AttemptStatus.UNKNOWN)
    assert attempt.failure_code == "timeout"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING  # unknown is never failed
    simulator.faults(latency_ms=0)

    wait_for_status([payment], PaymentStatus.SUCCEEDED, worker)
    assert_settled_once(payment, provider, simulator)
    assert payment.attempts.get().tries >= 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_pm_card_timeout_succeeds_when_asked_again(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    merchant, wallet = merchant_of(provider)

    payment = pay(merchant, wallet, "pm_card_timeout")

    wait_for_status([payment], PaymentStatus.SUCCEEDED, worker)
    assert_settled_once(payment, provider, simulator)
    attempt = payment.attempts.get()
    assert attempt.tries >= 2 and attempt.failure_code == ""
