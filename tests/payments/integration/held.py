"""What the refund and payout tests with a real worker share: the janitor sent until an
outcome arrives, what the simulator holds for an attempt, the provider's total refunded
for a payment, a worker killed in the middle of a call, and the closing checks."""

import re
import time
import uuid
from collections.abc import Callable

import pytest

from accounts.models import Hold, HoldStatus
from payments import tasks
from payments.models import AttemptStatus, Payment, PaymentAttempt, Payout, Refund
from payments.providers.base import ResultStatus
from payments.providers.registry import adapter_get
from tests.payments.held_helpers import provider_objects
from tests.payments.integration.conftest import (
    WAIT_SECONDS,
    SimulatorProcess,
    Worker,
    assert_reconciled,
)
from tests.workers import wait_until

TAKEN = re.compile(r"run_attempt\[(\S+)\] received")
LATENCY_MS = 1_000  # the simulator's delay on each call while a worker is killed


def janitor_until(condition: Callable[[], bool], what: str, worker: Worker | None = None) -> None:
    """Send the janitor's task (as Celery beat does, every 30 s; here every half second)
    until `condition` holds: refunds and payouts end only when the provider is asked
    again, since the simulator sends these tests no webhook."""
    last = 0.0

    def arrived() -> bool:
        nonlocal last
        if condition():
            return True
        if time.monotonic() - last > 0.5:
            tasks.recover_attempts.delay()
            last = time.monotonic()
        return False

    wait_until(
        arrived,
        seconds=WAIT_SECONDS,
        interval=0.05,
        what=what,
        seen=(lambda: worker.tail()) if worker else None,
    )


def statuses_are(objects: list[Refund] | list[Payout], status: str) -> Callable[[], bool]:
    model = type(objects[0])
    ids = [o.pk for o in objects]
    return lambda: (
        set(model.objects.filter(pk__in=ids).values_list("status", flat=True)) == {status}
    )


def at_provider(simulator: SimulatorProcess, operation: Refund | Payout) -> int:
    """How many objects the simulator holds for the operation's one attempt, and that the
    operation has exactly one attempt (one key: a second call could only be a replay)."""
    [attempt] = PaymentAttempt.objects.filter(
        **{operation._meta.model_name: operation}  # type: ignore[misc]
    )
    kind = "refunds" if isinstance(operation, Refund) else "payouts"
    return len(provider_objects(simulator.admin, operation.provider, kind, attempt))


def assert_refunded_at_provider(payment: Payment, expected: int) -> None:
    """The provider's total refunded (pending or succeeded) for the payment is exactly
    `expected`: a refund of one unit more than what that leaves is refused, and one of
    exactly what it leaves is accepted (these probes use keys of their own)."""
    payment.refresh_from_db()
    adapter = adapter_get(payment.provider)
    left = payment.amount_captured - expected

    def probe(amount: int) -> ResultStatus:
        return adapter.refund(
            idempotency_key=f"probe_{uuid.uuid4().hex}",
            payment_reference=payment.provider_reference,
            amount=amount,
            currency=payment.currency,
            reference="re_probe",
        ).status

    assert probe(left + 1) == ResultStatus.DECLINED
    if left:
        assert probe(left) == ResultStatus.PENDING


def assert_ended_once(simulator: SimulatorProcess, operations: list[Refund] | list[Payout]) -> None:
    """Each operation: one attempt, final; one object at the provider; its hold closed."""
    for operation in operations:
        operation.refresh_from_db()
        assert at_provider(simulator, operation) == 1, operation
        assert operation.attempts.get().status in (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED)
    holds = Hold.objects.filter(pk__in=[o.hold_id for o in operations])
    assert not holds.filter(status=HoldStatus.ACTIVE).exists()
    assert_reconciled()


def kill_during_call(worker: Worker, simulator: SimulatorProcess, calls_before: int) -> str:
    """SIGKILL `worker` while its provider call waits on the (slowed) simulator: once it has
    taken its `calls_before + 1`-th task; returns that task's id."""
    deadline = time.monotonic() + WAIT_SECONDS
    while len(taken := TAKEN.findall(worker.log.read_text(errors="replace"))) <= calls_before:
        if time.monotonic() > deadline:
            pytest.fail(f"the worker never took the task:\n{worker.tail()}")
        time.sleep(0.02)
    time.sleep(LATENCY_MS / 1000 / 3)  # the call is under way: the simulator holds it
    worker.kill()
    simulator.faults(latency_ms=0)
    return str(taken[calls_before])
