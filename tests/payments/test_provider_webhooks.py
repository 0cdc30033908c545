"""`POST /webhooks/providers/{provider}/` (payments/api/provider_webhooks.py) and the
processing of what it stores (payments/webhooks.py): every bad input of RELIABILITY B7
refused with nothing stored, duplicates stored once and applied once (F10), events out of
order ending in the provider's truth (F11). Against the simulator in-process; the tasks
eager, run on commit; the signatures made with the simulator's own code."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.models import Account
from accounts.services import merchant_default_provider_set
from audit.models import AuditLog, DeadLetter, DeadLetterStatus
from audit.services import dead_letter_retry
from bench.webhook_requests import adyen_notification_body, stripe_event_body, stripe_signature
from config.celery import app
from ledger.models import LedgerTransaction, LedgerTransactionKind
from payments import tasks
from payments.models import (
    AttemptStatus,
    Payment,
    PaymentAttempt,
    PaymentStatus,
    ProviderWebhook,
    ProviderWebhookStatus,
)
from payments.payments import payment_create
from payments.providers.registry import adapter_get, adapters_reset
from payments.webhooks import Outcome, provider_webhook_bury, provider_webhook_process
from tests.factories import AccountFactory
from tests.invariants import invariant_violations
from tests.workers import tasks_through_broker

PATH = "/webhooks/providers/{}/"
QUIET_BROKER = "redis://127.0.0.1:6379/12"
DEEP = b"[" * 100_000 + b"]" * 100_000  # RELIABILITY B5's nested arrays, within the size cap
OnCommit = Callable[..., Any]


@pytest.fixture(autouse=True)
def in_process_provider(settings: Settings, tmp_path: Any) -> Iterator[None]:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.PROVIDER_SIMULATOR_URL = ""
    settings.PROVIDER_SIMULATOR_STORE = str(tmp_path / "simulator.sqlite3")
    settings.PROVIDER_SIMULATOR_ASYNC_SECONDS = 0  # settled as soon as it is asked about
    settings.PROVIDER_CIRCUIT_STORAGE = "memory"
    yield
    adapters_reset()


@pytest.fixture
def wallet(db: None) -> Account:
    return AccountFactory.create(currency="USD")


def post(client: Client, provider: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        PATH.format(provider), data=body, content_type="application/json", headers=headers
    )


def async_payment(wallet: Account, provider: str = "stripe", capture: str = "automatic") -> Payment:
    """A pm_card_async payment, accepted by the provider (its attempt pending)."""
    assert wallet.merchant is not None
    merchant = merchant_default_provider_set(merchant=wallet.merchant, provider=provider)
    payment = payment_create(
        merchant=merchant,
        destination=wallet,
        amount=2_500,
        currency="USD",
        payment_method="pm_card_async",
        capture_method=capture,
    )
    payment.refresh_from_db()
    if not payment.provider_reference:  # inside the test's transaction: no commit yet
        tasks.run_attempt.delay(payment.attempts.get().pk)
        payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert payment.provider_reference
    return payment


def signed_event(payment: Payment, **fields: Any) -> tuple[bytes, dict[str, str]]:
    """The provider's webhook about `payment` (its status, by default succeeded)."""
    attempt = payment.attempts.get(kind="authorize")
    if payment.provider == "adyen":
        body = adyen_notification_body(
            psp_reference=payment.provider_reference, attempt=attempt.public_id, **fields
        )
        return body, {}
    body = stripe_event_body(
        reference=payment.provider_reference, attempt=attempt.public_id, **fields
    )
    return body, stripe_signature(body)


def payment_audit_rows(payment: Payment) -> int:
    return AuditLog.objects.filter(object_type="payment", object_id=payment.public_id).count()


def postings(payment: Payment) -> int:
    return LedgerTransaction.objects.filter(
        kind=LedgerTransactionKind.PAYMENT, description=f"Payment {payment.public_id}"
    ).count()


# --- B7: bad inputs, refused, nothing stored -------------------------------------------


def _stripe_valid() -> tuple[bytes, dict[str, str]]:
    body = stripe_event_body(reference="pi_b7")
    return body, stripe_signature(body)


def _one_byte_changed() -> tuple[bytes, dict[str, str]]:
    body, headers = _stripe_valid()
    return body.replace(b'"amount": 2500', b'"amount": 2501'), headers


def _reserialized() -> tuple[bytes, dict[str, str]]:
    body, headers = _stripe_valid()
    return json.dumps(json.loads(body), separators=(",", ":")).encode(), headers


def _header_without_v1() -> tuple[bytes, dict[str, str]]:
    body, headers = _stripe_valid()
    return body, {"Stripe-Signature": headers["Stripe-Signature"].replace("v1=", "v0=")}


def _at(offset: float) -> tuple[bytes, dict[str, str]]:
    body = stripe_event_body(reference="pi_b7")
    return body, stripe_signature(body, at=time.time() + offset)


def _another_secret() -> tuple[bytes, dict[str, str]]:
    body = stripe_event_body(reference="pi_b7")
    return body, stripe_signature(body, secret="whsec_another-endpoint")  # noqa: S106


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _at(-301), "stale timestamp"),
        (lambda: _at(+310), "timestamp in the future"),
        (_one_byte_changed, "bad signature"),
        (_reserialized, "bad signature"),
        (_header_without_v1, "no v1 signature"),
        (lambda: (_stripe_valid()[0], {"Stripe-Signature": "t=abc,v1=00"}), "malformed"),
        (lambda: (_stripe_valid()[0], {}), "signature header missing"),
        (_another_secret, "bad signature"),
        (lambda: (b"\xff" * 10, stripe_signature(b"\xff" * 10)), "body is not UTF-8"),
        (lambda: (b"[1, 2", stripe_signature(b"[1, 2")), "malformed JSON"),
        (lambda: (b"[1, 2]", stripe_signature(b"[1, 2]")), "not an event"),
        (lambda: (DEEP, stripe_signature(DEEP)), "malformed JSON"),
    ],
    ids=[
        "stale t",
        "future t",
        "one byte changed",
        "re-serialized",
        "no v1",
        "t=abc",
        "no header",
        "another secret",
        "not utf-8",
        "not json",
        "a list",
        "100,000 deep",
    ],
)
def test_stripe_bad_webhooks_are_400_logged_and_store_nothing(
    client: Client, db: None, caplog: pytest.LogCaptureFixture, make: Any, reason: str
) -> None:
    body, headers = make()
    with caplog.at_level(logging.WARNING, logger="payments.api.provider_webhooks"):
        response = post(client, "stripe", body, headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "webhook_invalid")
    assert reason in error["message"]
    refusals = [r for r in caplog.records if r.name == "payments.api.provider_webhooks"]
    assert [r.reason for r in refusals] == [error["message"]]  # type: ignore[attr-defined]
    assert ProviderWebhook.objects.count() == 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: adyen_notification_body(psp_reference="P1", at=time.time() - 301), "stale"),
        (lambda: adyen_notification_body(psp_reference="P1", at=time.time() + 301), "future"),
        (
            lambda: adyen_notification_body(psp_reference="P1").replace(b"2500", b"2501"),
            "bad signature",
        ),
        (lambda: b'{"notificationItems": "x"}', "no notificationItems"),
        (lambda: DEEP, "malformed JSON"),
        (lambda: b"[" + b"1," * 100_000 + b"1]", "no notificationItems"),
    ],
    ids=["stale", "future", "one byte changed", "malformed", "100,000 deep", "100,001 long"],
)
def test_adyen_bad_notifications_are_400_and_store_nothing(
    client: Client, db: None, make: Any, reason: str
) -> None:
    response = post(client, "adyen", make(), {})
    assert response.status_code == 400
    assert reason in response.json()["error"]["message"]
    assert ProviderWebhook.objects.count() == 0


def _stripe_signed_about(reference: str) -> tuple[bytes, dict[str, str]]:
    body = stripe_event_body(reference=reference)
    return body, stripe_signature(body)


def _adyen_batch(*psp_references: str) -> bytes:
    """One notification of an item per reference, each signed; a reference that cannot be
    (a lone surrogate: the HMAC is over UTF-8) carries the signature of the reference
    without it."""
    items = []
    for reference in psp_references:
        body = adyen_notification_body(psp_reference=reference.replace("\ud800", ""))
        wrapper = json.loads(body)["notificationItems"][0]
        wrapper["NotificationRequestItem"]["pspReference"] = reference
        items.append(wrapper)
    return json.dumps({"live": "false", "notificationItems": items}).encode()


@pytest.mark.parametrize(
    ("provider", "make"),
    [
        ("stripe", lambda: _stripe_signed_about("pi_\u0000")),
        ("stripe", lambda: _stripe_signed_about("pi_\ud800")),
        ("adyen", lambda: (adyen_notification_body(psp_reference="P1\u0000"), {})),
        # One good item, one not: nothing of the POST is stored.
        ("adyen", lambda: (_adyen_batch("P1", "P2\ud800"), {})),
    ],
    ids=["stripe NUL", "stripe lone surrogate", "adyen NUL", "adyen lone surrogate"],
)
def test_a_signed_event_whose_ids_postgresql_cannot_store_is_400(
    client: Client, db: None, provider: str, make: Any
) -> None:
    """RELIABILITY B4 in a signed body: a NUL or a lone surrogate in an id or a reference is
    refused, as any unstorable text, never a 500."""
    body, headers = make()
    response = post(client, provider, body, headers)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "webhook_invalid"
    assert ProviderWebhook.objects.count() == 0


def test_a_future_t_within_the_tolerance_is_accepted(client: Client, db: None) -> None:
    """The policy (Standard Webhooks'): a clock ahead of ours by up to the tolerance is
    accepted, further ahead refused (the future-t case above)."""
    body, headers = _at(+200)
    assert post(client, "stripe", body, headers).status_code == 200
    assert ProviderWebhook.objects.count() == 1


def test_an_unknown_provider_is_404(client: Client, db: None) -> None:
    body, headers = _stripe_valid()
    response = post(client, "paypal", body, headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


def test_only_post(client: Client, db: None) -> None:
    assert client.get(PATH.format("stripe")).status_code == 405


def test_a_body_over_the_limit_is_413_unread(client: Client, db: None, settings: Settings) -> None:
    settings.PROVIDER_WEBHOOK_MAX_BODY_BYTES = 1024
    body = b"{" + b" " * 2000 + b"}"
    response = post(client, "stripe", body, stripe_signature(body))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert ProviderWebhook.objects.count() == 0


def test_no_csrf_token_no_api_key_needed(db: None) -> None:
    body, headers = _stripe_valid()
    response = post(Client(enforce_csrf_checks=True), "stripe", body, headers)
    assert response.status_code == 200


# --- Valid webhooks: stored raw, once; processed once ----------------------------------


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_an_async_payment_finishes_through_its_webhook(
    client: Client, wallet: Account, provider: str, django_capture_on_commit_callbacks: OnCommit
) -> None:
    payment = async_payment(wallet, provider)
    body, headers = signed_event(payment)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, provider, body, headers)
    assert response.status_code == 200
    if provider == "adyen":
        assert response.content == b"[accepted]"
    else:
        assert response.json() == {"received": 1, "duplicates": 0}
    webhook = ProviderWebhook.objects.get()
    assert (webhook.provider, webhook.status, webhook.tries) == (
        provider,
        ProviderWebhookStatus.PROCESSED,
        1,
    )
    assert bytes(webhook.body) == body  # raw, byte for byte
    if provider == "stripe":
        assert webhook.signature_headers == {"Stripe-Signature": headers["Stripe-Signature"]}
    payment.refresh_from_db()
    # Adyen's AUTHORISATION says only "authorised": the provider's state, retrieved, says
    # captured (automatic capture).
    assert payment.status == PaymentStatus.SUCCEEDED
    assert postings(payment) == 1
    assert invariant_violations() == {}


def test_a_manual_capture_payment_becomes_requires_capture(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    payment = async_payment(wallet, capture="manual")
    body, headers = signed_event(
        payment, status="requires_capture", event_type="payment_intent.amount_capturable_updated"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, "stripe", body, headers).status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.amount_capturable) == (PaymentStatus.REQUIRES_CAPTURE, 2_500)
    assert postings(payment) == 0


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_the_same_event_five_times_in_a_row_is_one_row_one_transition(
    client: Client, wallet: Account, provider: str, django_capture_on_commit_callbacks: OnCommit
) -> None:
    payment = async_payment(wallet, provider)
    audit_before = payment_audit_rows(payment)
    body, headers = signed_event(payment)
    answers = []
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True) as sent:
            answers.append(post(client, provider, body, headers).status_code)
        assert len(sent) <= 1
    assert answers == [200] * 5
    assert ProviderWebhook.objects.count() == 1
    assert ProviderWebhook.objects.get().tries == 1  # the duplicates were only answered
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert postings(payment) == 1
    assert payment_audit_rows(payment) == audit_before + 1
    assert invariant_violations() == {}


def test_a_processed_webhook_processed_again_changes_nothing(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    payment = async_payment(wallet)
    body, headers = signed_event(payment)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, "stripe", body, headers)
    audit = payment_audit_rows(payment)
    webhook = ProviderWebhook.objects.get()
    assert provider_webhook_process(webhook_id=webhook.pk).outcome == Outcome.PROCESSED
    assert (postings(payment), payment_audit_rows(payment)) == (1, audit)


# --- F11: out of order ------------------------------------------------------------------


def _process_posted(
    client: Client, payment: Payment, on_commit: OnCommit, **fields: Any
) -> ProviderWebhook:
    body, headers = signed_event(payment, **fields)
    with on_commit(execute=True):
        assert post(client, payment.provider, body, headers).status_code == 200
    return ProviderWebhook.objects.order_by("-pk")[0]


def test_a_failed_event_after_succeeded_is_ignored(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    payment = async_payment(wallet)
    _process_posted(client, payment, django_capture_on_commit_callbacks)
    audit = payment_audit_rows(payment)
    late = _process_posted(
        client,
        payment,
        django_capture_on_commit_callbacks,
        status="requires_payment_method",
        event_type="payment_intent.payment_failed",
    )
    assert late.status == ProviderWebhookStatus.PROCESSED  # nothing to do: it had ended
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert (postings(payment), payment_audit_rows(payment)) == (1, audit)


def test_a_failed_event_before_the_truth_ends_in_the_truth(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    """A `failed` that the provider does not stand by (the provider says succeeded): the
    event's own content is never applied, the provider's current state is."""
    payment = async_payment(wallet)
    _process_posted(
        client,
        payment,
        django_capture_on_commit_callbacks,
        status="requires_payment_method",
        event_type="payment_intent.payment_failed",
    )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert postings(payment) == 1


def test_a_stale_processing_event_after_succeeded_changes_nothing(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    payment = async_payment(wallet)
    _process_posted(client, payment, django_capture_on_commit_callbacks)
    audit = payment_audit_rows(payment)
    stale = _process_posted(
        client,
        payment,
        django_capture_on_commit_callbacks,
        status="processing",
        event_type="payment_intent.processing",
        created=time.time() - 60,
    )
    assert stale.status == ProviderWebhookStatus.PROCESSED
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert (postings(payment), payment_audit_rows(payment)) == (1, audit)


def test_an_event_ahead_of_our_record_is_parked_then_processed(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    """The provider's webhook arrives before our attempt holds the object's reference
    (here: the attempt's own answer not applied yet, and the event without our id)."""
    assert wallet.merchant is not None
    with django_capture_on_commit_callbacks(execute=False):  # its task not run yet
        payment = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=2_500,
            currency="USD",
            payment_method="pm_card_async",
        )
    attempt = payment.attempts.get()
    accepted = adapter_get("stripe").authorize(
        idempotency_key=attempt.public_id,
        amount=2_500,
        currency="USD",
        payment_method="pm_card_async",
        capture=True,
        reference=payment.public_id,
    )
    body = stripe_event_body(reference=accepted.reference)  # no metadata: our id unknown
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, "stripe", body, stripe_signature(body)).status_code == 200
    webhook = ProviderWebhook.objects.get()
    assert webhook.status == ProviderWebhookStatus.PARKED  # eager: left for later
    assert "no authorize found" in webhook.last_error

    # Our own record catches up: the attempt's answer applied (the reference stored).
    PaymentAttempt.objects.filter(pk=attempt.pk).update(provider_reference=accepted.reference)
    Payment.objects.filter(pk=payment.pk).update(provider_reference=accepted.reference)

    assert provider_webhook_process(webhook_id=webhook.pk).outcome == Outcome.PROCESSED
    webhook.refresh_from_db()
    payment.refresh_from_db()
    assert (webhook.status, webhook.tries, webhook.last_error) == ("processed", 2, "")
    assert payment.status == PaymentStatus.SUCCEEDED
    assert postings(payment) == 1


def test_a_dead_webhook_is_a_dead_letter_and_its_retry_processes_it(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    body = stripe_event_body(reference="pi_nobody_knows")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, "stripe", body, stripe_signature(body))
    webhook = ProviderWebhook.objects.get()
    provider_webhook_bury(webhook_id=webhook.pk, reason="no authorize found")
    webhook.refresh_from_db()
    assert webhook.status == ProviderWebhookStatus.DEAD
    dead = DeadLetter.objects.get()
    assert (dead.kind, dead.task_name, dead.args, dead.object_id) == (
        "inbound_webhook",
        "payments.tasks.process_provider_webhook",
        [webhook.pk],
        str(webhook.pk),
    )
    # Still unknown: the operator's retry leaves it dead (eager: parked, not re-buried).
    with django_capture_on_commit_callbacks(execute=True):
        dead_letter_retry(dead_letter=dead)
    webhook.refresh_from_db()
    assert webhook.status == ProviderWebhookStatus.DEAD
    assert DeadLetter.objects.get().status == DeadLetterStatus.RETRIED


def test_a_dead_webhook_processed_later_resolves_its_dead_letter(
    client: Client, wallet: Account, django_capture_on_commit_callbacks: OnCommit
) -> None:
    payment = async_payment(wallet)
    body, headers = signed_event(payment)
    with django_capture_on_commit_callbacks(execute=False):
        post(client, "stripe", body, headers)
    webhook = ProviderWebhook.objects.get()
    provider_webhook_bury(webhook_id=webhook.pk, reason="the broker lost it")
    with django_capture_on_commit_callbacks(execute=True):
        dead_letter_retry(dead_letter=DeadLetter.objects.get())
    webhook.refresh_from_db()
    payment.refresh_from_db()
    assert webhook.status == ProviderWebhookStatus.PROCESSED
    assert payment.status == PaymentStatus.SUCCEEDED
    assert DeadLetter.objects.get().status == DeadLetterStatus.RESOLVED


def test_the_stored_webhook_is_never_changed_but_its_processing_fields(
    client: Client, db: None, django_capture_on_commit_callbacks: OnCommit
) -> None:
    body, headers = _stripe_valid()
    with django_capture_on_commit_callbacks(execute=False):
        post(client, "stripe", body, headers)
    webhook = ProviderWebhook.objects.get()
    ProviderWebhook.objects.filter(pk=webhook.pk).update(tries=3, last_error="x")
    with pytest.raises(Exception, match="only its processing status may change"):
        ProviderWebhook.objects.filter(pk=webhook.pk).update(body=b"{}")


def test_waiting_webhooks_are_swept_to_their_task(
    client: Client,
    wallet: Account,
    settings: Settings,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    from payments.tasks import sweep_provider_webhooks

    settings.PROVIDER_WEBHOOK_SWEEP_AFTER_SECONDS = 0
    payment = async_payment(wallet)
    body, headers = signed_event(payment)
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down
        post(client, "stripe", body, headers)
    assert sweep_provider_webhooks.delay().get() == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert sweep_provider_webhooks.delay().get() == 0


def test_a_parked_webhook_whose_retry_was_lost_is_swept_once_its_schedule_is_over(
    client: Client,
    db: None,
    settings: Settings,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    """A parked webhook's next try is its task's retry; when the broker refuses that retry,
    Celery drops the task (Reject): no task is left, and the sweep must send it, or it is
    parked for ever, neither processed nor a dead letter."""
    from payments.tasks import sweep_provider_webhooks

    settings.PROVIDER_WEBHOOK_SWEEP_AFTER_SECONDS = 0
    settings.PAYMENT_TASK_BACKOFF_MAX_SECONDS = 0  # the whole schedule: no time at all
    body = stripe_event_body(reference="pi_not_ours_yet")
    with django_capture_on_commit_callbacks(execute=False):
        post(client, "stripe", body, stripe_signature(body))
    webhook = ProviderWebhook.objects.get()
    assert provider_webhook_process(webhook_id=webhook.pk).outcome == Outcome.PARKED
    # ... and its retry was never sent.

    assert sweep_provider_webhooks.delay().get() == 1
    webhook.refresh_from_db()
    assert (webhook.status, webhook.tries) == (ProviderWebhookStatus.PARKED, 2)


def test_a_parked_webhook_within_its_schedule_is_left_to_its_retry(
    client: Client,
    db: None,
    settings: Settings,
    django_capture_on_commit_callbacks: OnCommit,
) -> None:
    from payments.tasks import sweep_provider_webhooks

    settings.PROVIDER_WEBHOOK_SWEEP_AFTER_SECONDS = 0
    body = stripe_event_body(reference="pi_not_ours_yet")
    with django_capture_on_commit_callbacks(execute=False):
        post(client, "stripe", body, stripe_signature(body))
    webhook = ProviderWebhook.objects.get()
    assert provider_webhook_process(webhook_id=webhook.pk).outcome == Outcome.PARKED

    assert sweep_provider_webhooks.delay().get() == 0


# --- F10: concurrently ------------------------------------------------------------------


def _at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except Exception as error:  # reported by the assertion
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_the_same_event_five_times_at_once_is_one_row_one_transition(provider: str) -> None:
    wallet = AccountFactory.create(currency="USD")
    payment = async_payment(wallet, provider)
    audit_before = payment_audit_rows(payment)
    body, headers = signed_event(payment)
    statuses = _at_once(5, lambda: post(Client(), provider, body, headers).status_code)
    assert statuses == [200] * 5
    assert ProviderWebhook.objects.count() == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert postings(payment) == 1
    assert payment_audit_rows(payment) == audit_before + 1
    assert invariant_violations() == {}


@pytest.mark.django_db(transaction=True)
def test_one_webhook_processed_five_times_at_once_is_one_transition(settings: Settings) -> None:
    """Its task delivered again (a redelivery, the sweep) while it runs: five runs at once
    settle the attempt once, under its payment's lock."""
    wallet = AccountFactory.create(currency="USD")
    payment = async_payment(wallet)
    audit_before = payment_audit_rows(payment)
    body, headers = signed_event(payment)
    # Its task goes to a broker no worker reads (Redis db 12, this module's), then is dropped.
    with tasks_through_broker(settings, QUIET_BROKER):
        post(Client(), "stripe", body, headers)
        app.control.purge()
    webhook = ProviderWebhook.objects.get()
    outcomes = _at_once(5, lambda: provider_webhook_process(webhook_id=webhook.pk).outcome)
    assert outcomes == [Outcome.PROCESSED] * 5
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.attempts.get().status == AttemptStatus.SUCCEEDED
    assert postings(payment) == 1
    assert payment_audit_rows(payment) == audit_before + 1
    assert invariant_violations() == {}


def test_the_admin_shows_stored_webhooks_read_only(
    db: None, django_capture_on_commit_callbacks: OnCommit
) -> None:
    body, headers = _stripe_valid()
    with django_capture_on_commit_callbacks(execute=False):
        post(Client(), "stripe", body, headers)
    webhook = ProviderWebhook.objects.get()
    staff = Client()
    staff.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-not-used"))
    listing = staff.get("/admin/payments/providerwebhook/")
    assert listing.status_code == 200
    assert webhook.event_id in listing.content.decode()
    page = staff.get(f"/admin/payments/providerwebhook/{webhook.pk}/change/")
    assert page.status_code == 200
    assert "pi_b7" in page.content.decode()  # the raw body, shown as text
    assert staff.post(f"/admin/payments/providerwebhook/{webhook.pk}/delete/").status_code == 403
