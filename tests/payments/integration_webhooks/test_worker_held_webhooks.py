"""Refunds and payouts finished by the provider's webhook end to end (the setting:
conftest.py): the simulator over HTTP settles them and posts its signed refund and payout
webhooks to the live server; a real worker processes them. No janitor runs: only the
webhook can finish them here.

Redis database 10 is this module's broker."""

from __future__ import annotations

import pytest

from accounts.models import HoldStatus
from audit.models import Event
from payments.models import (
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
)
from payments.payouts import payout_create
from payments.providers.registry import PROVIDERS
from payments.refunds import refund_create
from tests.payments.held_helpers import clearing_balance
from tests.payments.integration.conftest import (
    MakeMerchant,
    SimulatorProcess,
    Worker,
    pay,
    wait_for_status,
)
from tests.payments.integration.held import assert_ended_once, statuses_are
from tests.payments.integration_webhooks.conftest import (
    webhook_processed,
    webhook_statuses_at_simulator,
)
from tests.workers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
WAIT_SECONDS = 20.0


@pytest.fixture(scope="module")
def webhook_broker_url() -> str:
    return "redis://127.0.0.1:6379/10"


def _until(condition: object, what: str, worker: Worker) -> None:
    assert callable(condition)
    wait_until(condition, seconds=WAIT_SECONDS, interval=0.05, what=what, seen=worker.tail)


def _finished_by_webhook(simulator: SimulatorProcess, operation: Refund | Payout) -> None:
    """The operation's one webhook: sent by the simulator, stored once, processed."""
    webhook = webhook_processed(object_reference=operation.provider_reference)
    assert webhook.provider == operation.provider
    sent = webhook_statuses_at_simulator(simulator, "object_id", operation.provider_reference)
    assert sent == ["sent"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_refunds_and_payouts_finish_through_the_providers_webhooks(
    provider: str,
    merchant_of: MakeMerchant,
    webhook_simulator: SimulatorProcess,
    webhook_worker: Worker,
) -> None:
    merchant, wallet = merchant_of(provider)
    payment = pay(merchant, wallet)  # 25.00, no fee
    wait_for_status([payment], PaymentStatus.SUCCEEDED, webhook_worker)
    clearing_before = clearing_balance()

    # A refund that the provider settles, and one it fails (refundable again).
    refund = refund_create(merchant=merchant, payment=payment, amount=1_000)
    _until(statuses_are([refund], RefundStatus.SUCCEEDED), "the refund to succeed", webhook_worker)
    webhook_simulator.faults(refund_failure=1)
    failing = refund_create(merchant=merchant, payment=payment, amount=500)
    _until(statuses_are([failing], RefundStatus.FAILED), "the refund to fail", webhook_worker)

    # Payouts of what is left: one paid, one failed.
    paid = payout_create(
        merchant=merchant, source=wallet, amount=1_000, currency="USD", destination="ba_ok"
    )
    failed = payout_create(
        merchant=merchant, source=wallet, amount=500, currency="USD", destination="ba_fail"
    )
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.available, wallet.held) == (1_500, 0, 1_500)
    _until(statuses_are([paid], PayoutStatus.PAID), "the payout to be paid", webhook_worker)
    _until(statuses_are([failed], PayoutStatus.FAILED), "the payout to fail", webhook_worker)

    for operation in (refund, failing, paid, failed):
        operation.refresh_from_db()
        _finished_by_webhook(webhook_simulator, operation)
        # Two answers applied: the call's (pending), then the retrieve the webhook asked for.
        assert operation.attempts.get().tries == 2
    payment.refresh_from_db()
    wallet.refresh_from_db()
    assert payment.amount_refunded == 1_000
    assert (wallet.balance, wallet.available, wallet.held) == (500, 500, 0)
    assert clearing_balance() - clearing_before == 2_000  # the refund and the paid payout
    assert refund.hold.status == paid.hold.status == HoldStatus.CAPTURED
    assert failing.hold.status == failed.hold.status == HoldStatus.RELEASED
    events = Event.objects.filter(
        object_id__in=[o.public_id for o in (refund, failing, paid, failed)]
    )
    assert sorted(events.values_list("type", flat=True)) == [
        "payout.failed",
        "payout.paid",
        "refund.failed",
        "refund.succeeded",
    ]
    assert_ended_once(webhook_simulator, [refund, failing])
    assert_ended_once(webhook_simulator, [paid, failed])
