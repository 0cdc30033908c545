"""Refunds and payouts finished by the provider's webhook (payments/webhooks.py): the
refund's and the payout's own events, as the simulator makes and signs them, posted to
`/webhooks/providers/{provider}/` and processed (tasks eager, on commit): the hold captured
or released, one transition, one posting, one audit row, whatever the repetitions and the
order (RELIABILITY F10, F11). Against the simulator in-process, which sends no webhook of
its own: each test posts the one it would have sent."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.models import Account, HoldStatus
from accounts.services import merchant_default_provider_set
from audit.models import AuditLog, Event
from ledger.models import LedgerTransaction, LedgerTransactionKind
from ledger.reconciliation import reconcile_ledger
from payments.models import (
    AttemptStatus,
    Payment,
    PaymentAttempt,
    PaymentStatus,
    Payout,
    PayoutStatus,
    ProviderWebhook,
    ProviderWebhookStatus,
    Refund,
    RefundStatus,
)
from payments.payments import payment_create
from payments.payouts import payout_create
from payments.providers import transport
from payments.providers.registry import PROVIDERS, adapter_get
from payments.refunds import refund_create
from payments.webhooks import Outcome, provider_webhook_process
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations
from tests.payments.held_helpers import clearing_balance, succeeded_payment
from tests.payments.test_provider_webhooks import _at_once, post
from tests.workers import tasks_through_broker

pytestmark = pytest.mark.usefixtures("in_process")

HeldOperation = Refund | Payout


def _wallet(provider: str, balance: int = 0) -> Account:
    merchant = merchant_default_provider_set(merchant=MerchantFactory.create(), provider=provider)
    return AccountFactory.create(merchant=merchant, currency="USD", balance=balance)


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def payment(db: None, provider: str, django_capture_on_commit_callbacks: Any) -> Payment:
    return succeeded_payment(_wallet(provider), 10_000, django_capture_on_commit_callbacks)


def refund_of(payment: Payment, capture: Any, amount: int = 4_000) -> Refund:
    """A refund accepted by the provider: its attempt pending, the provider's id kept."""
    with capture(execute=True):
        refund = refund_create(merchant=payment.merchant, payment=payment, amount=amount)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING and refund.provider_reference
    return refund


def payout_of(wallet: Account, capture: Any, destination: str = "ba_ok") -> Payout:
    assert wallet.merchant is not None
    with capture(execute=True):
        payout = payout_create(
            merchant=wallet.merchant,
            source=wallet,
            amount=2_500,
            currency="USD",
            destination=destination,
        )
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PENDING and payout.provider_reference
    return payout


def provider_webhook(operation: HeldOperation, **changes: Any) -> tuple[bytes, dict[str, str]]:
    """The webhook the simulator sends once the operation has settled there: its object
    read from the simulator's store (settled, as the simulator does before it sends), shaped
    and signed by the simulator's own wire format. `changes` alter the object the event
    carries (a stale or contrary event), never the provider's state."""
    app = transport.simulator_in_process().app
    noun = operation._meta.model_name
    read = app.engine.get_refund if noun == "refund" else app.engine.get_payout
    with app.store.transaction() as tx:
        settled = read(tx, operation.provider, operation.provider_reference, time.time())
    event = dataclasses.replace(settled, **changes)
    wire = app.formats[operation.provider]
    now = time.time()
    body = wire.webhook(f"{noun}.settled", event, None, now)
    assert body is not None
    return body, wire.sign(body, now)


def deliver(operation: HeldOperation, capture: Any, **changes: Any) -> ProviderWebhook:
    """Post the operation's webhook and run its task (eager, on commit)."""
    body, headers = provider_webhook(operation, **changes)
    with capture(execute=True):
        assert post(Client(), operation.provider, body, headers).status_code == 200
    return ProviderWebhook.objects.order_by("-pk")[0]


def ended(operation: HeldOperation) -> list[str]:
    """The operation's events (`refund.succeeded`, …): one per transition."""
    return list(
        Event.objects.filter(object_id=operation.public_id)
        .order_by("pk")
        .values_list("type", flat=True)
    )


def audited(operation: HeldOperation, status: str) -> int:
    noun = operation._meta.model_name
    return AuditLog.objects.filter(action=f"{noun}.{status}", object_id=operation.public_id).count()


def postings_of(operation: HeldOperation) -> int:
    """The captures of the operation's hold (counted by what they say, not through the
    operation's one-to-one link, which could only ever show one)."""
    return LedgerTransaction.objects.filter(
        kind=LedgerTransactionKind.HOLD_CAPTURE,
        description=f"Capture of {operation.hold.public_id}",
    ).count()


def assert_clean() -> None:
    assert invariant_violations() == {}
    run = reconcile_ledger()
    assert (run.status, run.breaks) == ("ok", [])


# --- Refunds ---------------------------------------------------------------------------


def test_a_refunds_webhook_captures_its_hold(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    refund = refund_of(payment, django_capture_on_commit_callbacks)
    wallet = payment.destination_account
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.available, wallet.held) == (10_000, 6_000, 4_000)

    webhook = deliver(refund, django_capture_on_commit_callbacks)

    assert (webhook.status, webhook.kind, webhook.object_reference) == (
        ProviderWebhookStatus.PROCESSED,
        "refund",
        refund.provider_reference,
    )
    refund.refresh_from_db()
    wallet.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.attempts.get().status == AttemptStatus.SUCCEEDED
    assert refund.hold.status == HoldStatus.CAPTURED
    assert refund.ledger_transaction_id == refund.hold.ledger_transaction_id is not None
    assert (wallet.balance, wallet.available, wallet.held) == (6_000, 6_000, 0)
    assert payment.amount_refunded == 4_000
    assert clearing_balance() == -6_000  # −10,000 at the payment, +4,000 at the refund
    assert ended(refund) == ["refund.succeeded"]
    assert (postings_of(refund), audited(refund, "succeeded")) == (1, 1)
    assert_clean()


def test_a_failed_refunds_webhook_releases_its_hold(
    payment: Payment, simulator_admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    simulator_admin.post("/_simulator/faults", json={"refund_failure": 1}).raise_for_status()
    refund = refund_of(payment, django_capture_on_commit_callbacks)

    deliver(refund, django_capture_on_commit_callbacks)

    refund.refresh_from_db()
    payment.refresh_from_db()
    wallet = payment.destination_account
    wallet.refresh_from_db()
    assert refund.status == RefundStatus.FAILED and refund.failure_code
    assert refund.attempts.get().status == AttemptStatus.FAILED
    assert refund.hold.status == HoldStatus.RELEASED
    assert refund.ledger_transaction is None
    assert payment.amount_refunded == 0  # refundable again
    assert (wallet.balance, wallet.available, wallet.held) == (10_000, 10_000, 0)
    assert ended(refund) == ["refund.failed"]
    assert (postings_of(refund), audited(refund, "failed")) == (0, 1)
    assert_clean()


def test_the_same_refund_event_five_times_in_a_row_is_one_transition(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    refund = refund_of(payment, django_capture_on_commit_callbacks)
    body, headers = provider_webhook(refund)
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(Client(), refund.provider, body, headers).status_code == 200
    webhook = ProviderWebhook.objects.get()
    assert (webhook.status, webhook.tries) == (ProviderWebhookStatus.PROCESSED, 1)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert ended(refund) == ["refund.succeeded"]
    assert (postings_of(refund), audited(refund, "succeeded")) == (1, 1)
    assert_clean()


def _refund_in_autocommit(provider: str) -> Refund:
    """A transactional test's refund, accepted by the provider (on_commit runs at once)."""
    wallet = _wallet(provider)
    assert wallet.merchant is not None
    payment = payment_create(
        merchant=wallet.merchant,
        destination=wallet,
        amount=10_000,
        currency="USD",
        payment_method="pm_card_visa",
    )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    refund = refund_create(merchant=wallet.merchant, payment=payment, amount=4_000)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING and refund.provider_reference
    return refund


@pytest.mark.django_db(transaction=True)
def test_the_same_refund_event_five_times_at_once_is_one_transition(provider: str) -> None:
    refund = _refund_in_autocommit(provider)
    body, headers = provider_webhook(refund)
    statuses = _at_once(5, lambda: post(Client(), provider, body, headers).status_code)
    assert statuses == [200] * 5
    assert ProviderWebhook.objects.get().status == ProviderWebhookStatus.PROCESSED
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert ended(refund) == ["refund.succeeded"]
    assert (postings_of(refund), audited(refund, "succeeded")) == (1, 1)
    assert_clean()


@pytest.mark.django_db(transaction=True)
def test_one_refund_webhook_processed_five_times_at_once_is_one_transition(
    provider: str, settings: Settings
) -> None:
    """Its task delivered again while it runs (a redelivery, the sweep, an operator's
    retry): five runs at once settle the refund once, under its payment's and its own
    locks."""
    refund = _refund_in_autocommit(provider)
    body, headers = provider_webhook(refund)
    with tasks_through_broker(settings, "memory://"):  # stored, its task not run here
        assert post(Client(), provider, body, headers).status_code == 200
    webhook = ProviderWebhook.objects.get()
    assert webhook.status == ProviderWebhookStatus.RECEIVED
    outcomes = _at_once(5, lambda: provider_webhook_process(webhook_id=webhook.pk).outcome)
    assert outcomes == [Outcome.PROCESSED] * 5
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert ended(refund) == ["refund.succeeded"]
    assert (postings_of(refund), audited(refund, "succeeded")) == (1, 1)
    assert_clean()


# --- Refunds out of order (F11) ---------------------------------------------------------


def test_a_failed_refund_event_after_succeeded_changes_nothing(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    refund = refund_of(payment, django_capture_on_commit_callbacks)
    deliver(refund, django_capture_on_commit_callbacks)
    late = deliver(refund, django_capture_on_commit_callbacks, status="failed")
    assert late.status == ProviderWebhookStatus.PROCESSED  # it had ended: nothing to do
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert payment.amount_refunded == 4_000
    assert ended(refund) == ["refund.succeeded"]
    assert postings_of(refund) == 1
    assert_clean()


def test_a_failed_refund_event_the_provider_does_not_stand_by_ends_succeeded(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    """The event's content is never applied; the provider's state, asked for, is."""
    refund = refund_of(payment, django_capture_on_commit_callbacks)
    deliver(refund, django_capture_on_commit_callbacks, status="failed")
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert ended(refund) == ["refund.succeeded"]


def test_a_succeeded_event_for_a_refund_that_failed_at_the_provider_ends_failed(
    payment: Payment, simulator_admin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    simulator_admin.post("/_simulator/faults", json={"refund_failure": 1}).raise_for_status()
    refund = refund_of(payment, django_capture_on_commit_callbacks)
    deliver(refund, django_capture_on_commit_callbacks, status="succeeded")
    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    assert refund.hold.status == HoldStatus.RELEASED
    assert ended(refund) == ["refund.failed"]


def test_the_payments_stale_success_event_after_its_refunds_changes_nothing(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    """The payment's own success webhook, delayed, arrives after its refund's: the payment
    has ended (its attempt final), so it is processed with nothing to do: the payment stays
    succeeded, its refunded amount and the refund as the provider has them."""
    refund = refund_of(payment, django_capture_on_commit_callbacks)
    deliver(refund, django_capture_on_commit_callbacks)
    payment.refresh_from_db()
    audit_before = AuditLog.objects.filter(object_id=payment.public_id).count()

    app = transport.simulator_in_process().app
    wire = app.formats[payment.provider]
    with app.store.transaction() as tx:
        at_provider = app.engine.get_payment(
            tx, payment.provider, payment.provider_reference, time.time()
        )
    stale_at = time.time() - 60
    body = wire.webhook("payment.settled", at_provider, None, stale_at)
    assert body is not None
    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), payment.provider, body, wire.sign(body, time.time()))
    assert response.status_code == 200
    stale = ProviderWebhook.objects.order_by("-pk")[0]
    assert (stale.kind, stale.status) == ("authorize", ProviderWebhookStatus.PROCESSED)

    payment.refresh_from_db()
    refund.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert (payment.amount_captured, payment.amount_refunded) == (10_000, 4_000)
    assert refund.status == RefundStatus.SUCCEEDED
    assert AuditLog.objects.filter(object_id=payment.public_id).count() == audit_before
    assert_clean()


def test_a_refunds_event_ahead_of_the_refund_being_recorded_is_parked_then_processed(
    payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    """The refund's webhook arrives while its attempt has not stored the provider's id
    and names no attempt of ours that is still open: parked, then processed once our
    record has caught up; neither applied early nor lost."""
    with django_capture_on_commit_callbacks(execute=False):  # its task not run yet
        refund = refund_create(merchant=payment.merchant, payment=payment, amount=4_000)
    attempt = refund.attempts.get()
    accepted = adapter_get(refund.provider).refund(
        idempotency_key=attempt.public_id,
        payment_reference=payment.provider_reference,
        amount=4_000,
        currency="USD",
        reference=refund.public_id,
    )
    refund.provider_reference = accepted.reference  # to read it at the simulator; not saved
    # The event without our id (Stripe's metadata, Adyen's merchantReference): only the
    # provider's object names it.
    webhook = deliver(refund, django_capture_on_commit_callbacks, attempt="", metadata={})
    assert webhook.status == ProviderWebhookStatus.PARKED

    assert "no refund found" in webhook.last_error
    # Our own record catches up: the attempt's first answer applied (the reference kept).
    PaymentAttempt.objects.filter(pk=attempt.pk).update(provider_reference=accepted.reference)
    assert provider_webhook_process(webhook_id=webhook.pk).outcome == Outcome.PROCESSED
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert (postings_of(refund), ended(refund)) == (1, ["refund.succeeded"])


# --- Payouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "status", "balance", "clearing"),
    [("ba_ok", PayoutStatus.PAID, 7_500, 2_500), ("ba_fail", PayoutStatus.FAILED, 10_000, 0)],
)
def test_a_payouts_webhook_finishes_it(
    db: None,
    provider: str,
    django_capture_on_commit_callbacks: Any,
    destination: str,
    status: str,
    balance: int,
    clearing: int,
) -> None:
    wallet = _wallet(provider, balance=10_000)
    clearing_before = clearing_balance()
    payout = payout_of(wallet, django_capture_on_commit_callbacks, destination)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.available, wallet.held) == (10_000, 7_500, 2_500)

    webhook = deliver(payout, django_capture_on_commit_callbacks)

    assert (webhook.status, webhook.kind) == (ProviderWebhookStatus.PROCESSED, "payout")
    payout.refresh_from_db()
    wallet.refresh_from_db()
    assert payout.status == status
    assert (wallet.balance, wallet.available, wallet.held) == (balance, balance, 0)
    assert clearing_balance() - clearing_before == clearing
    paid = status == PayoutStatus.PAID
    assert payout.hold.status == (HoldStatus.CAPTURED if paid else HoldStatus.RELEASED)
    assert (payout.failure_code != "") == (not paid)
    assert ended(payout) == [f"payout.{status}"]
    assert (postings_of(payout), audited(payout, status)) == (int(paid), 1)

    # The same news again, and its contrary: nothing more.
    contrary = "failed" if paid else "paid"
    assert deliver(payout, django_capture_on_commit_callbacks, status=contrary).status == (
        ProviderWebhookStatus.PROCESSED
    )
    payout.refresh_from_db()
    assert payout.status == status
    assert ended(payout) == [f"payout.{status}"]
    assert_clean()
