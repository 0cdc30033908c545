"""A worker SIGKILLed in the middle of a provider call (the simulator slowed down so that
the call is under way): the payment is finished by the janitor, or by Redis handing the
task to the next worker, with one charge at the simulator and one ledger posting."""

import re
import time

import pytest

from payments import tasks
from payments.models import AttemptStatus, Payment, PaymentStatus
from payments.providers.registry import PROVIDERS
from tests.payments.integration.conftest import (
    WAIT_SECONDS,
    MakeMerchant,
    SimulatorProcess,
    Worker,
    Workers,
    assert_settled_once,
    pay,
    wait_for_status,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LATENCY_MS = 1_000  # the simulator's delay on each call while the worker is killed
TAKEN = re.compile(r"run_attempt\[(\S+)\] received")


def _kill_mid_call(worker: Worker, simulator: SimulatorProcess, payment: Payment) -> str:
    """SIGKILL `worker` while its provider call for `payment` waits on the simulator;
    returns the id of the task it was running."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not (taken := TAKEN.search(worker.log.read_text(errors="replace"))):
        if time.monotonic() > deadline:
            pytest.fail(f"the worker never took the payment's task:\n{worker.tail()}")
        time.sleep(0.02)
    time.sleep(LATENCY_MS / 1000 / 3)  # the call is under way: the simulator holds it
    worker.kill()
    simulator.faults(latency_ms=0)
    payment.refresh_from_db()
    attempt = payment.attempts.get()
    assert (payment.status, attempt.status, attempt.tries) == (
        PaymentStatus.PROCESSING,
        AttemptStatus.PENDING,
        0,
    ), "the worker was killed before it recorded anything"
    return taken.group(1)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_worker_killed_mid_call_is_finished_by_the_janitor(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, workers: Workers
) -> None:
    merchant, wallet = merchant_of(provider)
    simulator.faults(latency_ms=LATENCY_MS)
    first = workers.start()
    payment = pay(merchant, wallet)
    task_id = _kill_mid_call(first, simulator, payment)

    # The next worker. Redis keeps the dead worker's task for its visibility timeout (an
    # hour); the janitor, on its schedule (sent here as Celery beat sends it), finds the
    # attempt quiet past its threshold and asks the provider by the attempt's key.
    second = workers.start()
    tasks.recover_attempts.delay()

    wait_for_status([payment], PaymentStatus.SUCCEEDED, second)
    assert_settled_once(payment, provider, simulator)
    assert payment.attempts.get().recovery_rounds == 0  # done in the janitor's first round
    assert task_id not in second.log.read_text()  # not by the task delivered again


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_killed_workers_task_is_delivered_again_to_the_next_worker(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, workers: Workers
) -> None:
    merchant, wallet = merchant_of(provider)
    simulator.faults(latency_ms=LATENCY_MS)
    first = workers.start()
    payment = pay(merchant, wallet)
    task_id = _kill_mid_call(first, simulator, payment)

    # acks_late: the task was never acknowledged. A worker with a short visibility timeout
    # takes it back from Redis, and makes the call again with the same key. No janitor.
    second = workers.start(
        BROKER_VISIBILITY_TIMEOUT_SECONDS="1", PAYMENT_RECOVERY_AFTER_SECONDS="3600"
    )

    wait_for_status([payment], PaymentStatus.SUCCEEDED, second)
    assert_settled_once(payment, provider, simulator)
    assert payment.attempts.get().tries == 1  # applied once, by the delivered-again task
    assert f"run_attempt[{task_id}] succeeded" in second.log.read_text()
