"""`bench_payments` end to end in a few seconds (bin/serve, a Celery worker, the simulator,
all stopped afterwards), and its settled-once check failing when a payment was charged or
posted other than once."""

import re
import shutil
from io import StringIO
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from bench.payments import BenchMerchant, Charges, bench_merchant_create, settled_once_violations
from payments.attempts import attempt_result_apply
from payments.models import Payment, PaymentStatus
from payments.payments import payment_create
from payments.providers.base import ProviderResult, ResultStatus

# The tests' worker broker (tests/payments/integration uses it too, one test at a time).
BROKER_URL = "redis://127.0.0.1:6379/8"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("client", ["wrk", "httpx"])
def test_a_short_run_settles_every_payment_once(client: str) -> None:
    if client == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    out = StringIO()

    call_command(
        "bench_payments",
        *("--seconds", "2", "--clients", "2", "--mix", "spec", "--client", client),
        *("--workers", "1", "--worker-concurrency", "2", "--broker", BROKER_URL),
        stdout=out,
        stderr=StringIO(),
    )

    output = out.getvalue()
    accepted = re.search(r"^accepted  POST /api/v1/payments: .* n (\d+)  202: (\d+)$", output, re.M)
    assert accepted and accepted.group(1) == accepted.group(2) != "0", output
    assert re.search(r"^settled   creation → succeeded: .* p99 .* ms  n \d+", output, re.M)
    assert re.search(r"^CPU a payment, .*server .*worker .*simulator .*postgres", output, re.M)
    assert "settled once: ok (" in output and "invariants: ok (" in output, output
    # The payments are the test database's: the server and the worker wrote here.
    assert Payment.objects.count() == int(accepted.group(1))
    assert not Payment.objects.filter(status=PaymentStatus.PROCESSING).exists()


# No worker below: the payments' tasks are captured, never sent.


@pytest.fixture
def settled(django_capture_on_commit_callbacks: Any) -> tuple[BenchMerchant, Payment]:
    """A bench merchant's payment, succeeded through its one attempt (no worker: the
    provider's answer applied here)."""
    bench = bench_merchant_create("stripe")
    with django_capture_on_commit_callbacks(execute=False):
        payment = payment_create(
            merchant=bench.merchant,
            destination=bench.account,
            amount=1_000,
            currency="USD",
            payment_method="pm_card_visa",
        )
    attempt_result_apply(
        attempt_id=payment.attempts.get().pk,
        result=ProviderResult(
            status=ResultStatus.SUCCEEDED,
            reference="pi_bench",
            amount=1_000,
            currency="USD",
            amount_captured=1_000,
        ),
    )
    payment.refresh_from_db()
    return bench, payment


def _charges(payment: Payment, count: int) -> Charges:
    key = payment.attempts.get().public_id
    return Charges(
        by_key={"stripe": {key: count}, "adyen": {}},
        by_reference={"stripe": {payment.public_id: count}, "adyen": {}},
    )


@pytest.mark.django_db
def test_a_payment_settled_once_passes(settled: tuple[BenchMerchant, Payment]) -> None:
    bench, payment = settled

    summary, violations = settled_once_violations(bench, accepted=1, charges=_charges(payment, 1))

    assert violations == []
    assert "1 payments = 1 answered 202; 1 succeeded" in summary


@pytest.mark.django_db
def test_a_payment_charged_twice_is_a_violation(settled: tuple[BenchMerchant, Payment]) -> None:
    bench, payment = settled

    _, violations = settled_once_violations(bench, accepted=1, charges=_charges(payment, 2))

    assert len(violations) == 2, violations
    assert "1 payments charged other than once" in violations[0]
    assert "1 attempt keys charged more than once" in violations[1]


@pytest.mark.django_db
def test_a_succeeded_payment_never_charged_is_a_violation(
    settled: tuple[BenchMerchant, Payment],
) -> None:
    bench, payment = settled

    _, violations = settled_once_violations(bench, accepted=1, charges=_charges(payment, 0))

    assert violations == [
        f"1 payments charged other than once if succeeded (never if not), "
        f"by the simulator's count per payment, e.g. {payment.public_id}: 0"
    ]


@pytest.mark.django_db
def test_a_lost_or_unfinished_payment_is_a_violation(
    settled: tuple[BenchMerchant, Payment], django_capture_on_commit_callbacks: Any
) -> None:
    bench, payment = settled
    with django_capture_on_commit_callbacks(execute=False):
        stuck = payment_create(
            merchant=bench.merchant,
            destination=bench.account,
            amount=500,
            currency="USD",
            payment_method="pm_card_visa",
        )

    _, violations = settled_once_violations(bench, accepted=3, charges=_charges(payment, 1))

    assert violations[0] == "3 payments answered 202, but 2 exist"
    assert violations[1].startswith("1 payments did not end as their method says, e.g. ")
    assert f"{stuck.public_id} (pm_card_visa) processing" in violations[1]


@pytest.mark.django_db
def test_a_broker_with_tasks_waiting_is_refused() -> None:
    client = redis.Redis.from_url(BROKER_URL)
    client.rpush("celery", "a task of someone else's")
    try:
        with pytest.raises(CommandError, match=r"already holds \d+ tasks"):
            call_command("bench_payments", "--broker", BROKER_URL, stdout=StringIO())
    finally:
        client.delete("celery")
        client.close()
