"""Inbound provider webhooks end to end (the setting: conftest.py): `pm_card_async`
payments finish only through this path here: no janitor runs, and the attempt's own task
leaves an accepted (pending) payment alone.

Redis database 12 is these tests' broker (tests/payments/integration uses 8)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from audit.models import DeadLetter, DeadLetterStatus
from audit.services import dead_letter_retry
from bench.webhook_requests import stripe_event_body, stripe_signature
from payments.models import (
    CaptureMethod,
    PaymentStatus,
    ProviderWebhook,
    ProviderWebhookStatus,
)
from payments.payments import payment_cancel, payment_capture
from payments.providers.registry import PROVIDERS
from tests.payments.integration.conftest import (
    WAIT_SECONDS,
    MakeMerchant,
    SimulatorProcess,
    Worker,
    assert_reconciled,
    ledger_postings,
    pay,
    wait_for_status,
)
from tests.payments.integration_webhooks.conftest import (
    MAX_TRIES,
    webhook_processed,
    webhook_statuses_at_simulator,
)
from tests.workers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_async_payment_finishes_through_the_providers_webhook(
    provider: str,
    merchant_of: MakeMerchant,
    webhook_simulator: SimulatorProcess,
    webhook_worker: Worker,
) -> None:
    merchant, wallet = merchant_of(provider)
    payment = pay(merchant, wallet, "pm_card_async")
    wait_for_status([payment], PaymentStatus.SUCCEEDED, webhook_worker)
    webhook = webhook_processed(provider=provider)
    assert webhook.object_reference == payment.provider_reference
    assert webhook_statuses_at_simulator(webhook_simulator, "provider", provider) == ["sent"]
    assert webhook_simulator.charges(provider, payment) == 1
    assert ledger_postings(payment) == 1
    assert_reconciled()


def test_a_manual_capture_async_payment_becomes_capturable_through_its_webhook(
    merchant_of: MakeMerchant, webhook_worker: Worker
) -> None:
    merchant, wallet = merchant_of("stripe")
    payment = pay(merchant, wallet, "pm_card_async", capture_method=CaptureMethod.MANUAL)
    wait_for_status([payment], PaymentStatus.REQUIRES_CAPTURE, webhook_worker)
    assert ProviderWebhook.objects.get().type == "payment_intent.amount_capturable_updated"
    assert ledger_postings(payment) == 0


def test_duplicates_through_the_server_are_one_row_and_one_posting(
    merchant_of: MakeMerchant, live_server: Any, webhook_worker: Worker
) -> None:
    """The provider's retries of an event already stored: answered, not processed again."""
    merchant, wallet = merchant_of("stripe")
    payment = pay(merchant, wallet, "pm_card_async")
    wait_for_status([payment], PaymentStatus.SUCCEEDED, webhook_worker)
    webhook = ProviderWebhook.objects.get()
    body = bytes(webhook.body)
    with httpx.Client(base_url=live_server.url, trust_env=False) as client:
        for _ in range(5):
            response = client.post(
                "/webhooks/providers/stripe/",
                content=body,
                headers={**stripe_signature(body), "Content-Type": "application/json"},
            )
            assert response.json() == {"received": 0, "duplicates": 1}
    webhook.refresh_from_db()
    assert (ProviderWebhook.objects.count(), webhook.tries) == (1, 1)
    assert ledger_postings(payment) == 1
    assert_reconciled()


def test_an_event_never_matched_is_retried_then_a_dead_letter_retried_from_there(
    live_server: Any, webhook_worker: Worker
) -> None:
    body = stripe_event_body(reference="pi_never_ours")
    with httpx.Client(base_url=live_server.url, trust_env=False) as client:
        response = client.post(
            "/webhooks/providers/stripe/",
            content=body,
            headers={**stripe_signature(body), "Content-Type": "application/json"},
        )
    assert response.status_code == 200
    webhook = ProviderWebhook.objects.get()

    def dead() -> bool:
        webhook.refresh_from_db()
        return webhook.status == ProviderWebhookStatus.DEAD

    wait_until(dead, seconds=WAIT_SECONDS, what="the webhook to be dead", seen=webhook_worker.tail)
    assert webhook.tries == MAX_TRIES
    assert "no authorize found for 'pi_never_ours'" in webhook.last_error
    letter = DeadLetter.objects.get()
    assert (letter.kind, letter.status) == ("inbound_webhook", DeadLetterStatus.OPEN)

    # The operator's retry sends the task again, by name: one more try, dead again.
    dead_letter_retry(dead_letter=letter)
    wait_until(
        lambda: DeadLetter.objects.count() == 2,
        seconds=WAIT_SECONDS,
        what="the retried webhook's second dead letter",
        seen=webhook_worker.tail,
    )
    webhook.refresh_from_db()
    assert (webhook.status, webhook.tries) == (ProviderWebhookStatus.DEAD, MAX_TRIES + 1)


@pytest.mark.parametrize("operation", ["capture", "cancel"])
def test_adyen_capture_and_cancel_notifications_race_their_own_answer_once(
    operation: str,
    merchant_of: MakeMerchant,
    webhook_simulator: SimulatorProcess,
    webhook_worker: Worker,
) -> None:
    """Adyen notifies a capture or a cancel about when the attempt's own task applies the
    provider's answer (before, during or after): both settle the same attempt under its
    payment's lock, so it ends once, posted once."""
    merchant, wallet = merchant_of("adyen")
    payment = pay(merchant, wallet, capture_method=CaptureMethod.MANUAL)
    wait_for_status([payment], PaymentStatus.REQUIRES_CAPTURE, webhook_worker)
    if operation == "capture":
        payment_capture(payment=payment)
        wait_for_status([payment], PaymentStatus.SUCCEEDED, webhook_worker)
    else:
        payment_cancel(payment=payment)
        wait_for_status([payment], PaymentStatus.CANCELED, webhook_worker)
    code = "CAPTURE" if operation == "capture" else "CANCELLATION"

    def notified() -> bool:
        return ProviderWebhook.objects.filter(
            type=code, status=ProviderWebhookStatus.PROCESSED
        ).exists()

    wait_until(notified, seconds=WAIT_SECONDS, what=f"the {code} notification processed")
    webhook = ProviderWebhook.objects.get(type=code)
    assert webhook.object_reference == payment.provider_reference
    assert ledger_postings(payment) == (1 if operation == "capture" else 0)
    assert payment.attempts.filter(kind=operation, status="succeeded").count() == 1
    assert_reconciled()
