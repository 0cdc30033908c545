"""What happens when a payment's provider call does not end well: the janitor finishes a
charge whose answer (or posting) was lost, makes a call that never reached the provider
with the same key, and what cannot finish lands in the dead letters, retried from there.
Against the simulator in-process; the tasks eager, inside the test's transaction (so a
task sent on commit is not sent unless a test runs the callbacks)."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from accounts.models import Account, AccountStatus
from audit.models import AuditLog, DeadLetter, DeadLetterStatus
from audit.services import dead_letter_retry
from ledger.models import LedgerEntry
from payments import tasks
from payments.models import AttemptStatus, Payment, PaymentAttempt, PaymentStatus
from payments.payments import payment_cancel, payment_capture, payment_create
from payments.providers import transport
from payments.providers.circuit import circuit_force
from payments.providers.registry import PROVIDERS, adapter_get, adapters_reset
from tests.factories import AccountFactory
from tests.invariants import invariant_violations

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_providers(settings: Settings, tmp_path: Any) -> Iterator[None]:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.PROVIDER_SIMULATOR_URL = ""
    settings.PROVIDER_SIMULATOR_STORE = str(tmp_path / "simulator.sqlite3")
    settings.PROVIDER_CIRCUIT_STORAGE = "memory"
    settings.PROVIDER_CIRCUIT_FAILURES = 1000  # these tests count the task's tries
    settings.PROVIDER_RETRY_BASE_DELAY_SECONDS = 0.01
    settings.PROVIDER_RETRY_MAX_DELAY_SECONDS = 0.05
    settings.PROVIDER_MAX_NETWORK_RETRIES = 0
    settings.PAYMENT_TASK_BACKOFF_SECONDS = 0.01
    settings.PAYMENT_RECOVERY_AFTER_SECONDS = 0
    yield
    adapters_reset()


@pytest.fixture
def simulator_admin() -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=transport.IN_PROCESS_BASE_URL,
        transport=httpx.WSGITransport(app=transport.simulator_in_process()),
    ) as admin:
        admin.post("/_simulator/reset").raise_for_status()
        yield admin


@pytest.fixture
def wallet() -> Account:
    return AccountFactory.create(currency="USD")


def _charges(admin: httpx.Client, key: str) -> int:
    return int(admin.get("/_simulator/charges").json()["stripe"].get(key, 0))


def _unsent_payment(wallet: Account, django_capture_on_commit_callbacks: Any) -> Payment:
    """A payment whose task never ran (the broker lost it, or the worker died first)."""
    assert wallet.merchant is not None
    with django_capture_on_commit_callbacks(execute=False):
        return payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=5_000,
            currency="USD",
            payment_method="pm_card_visa",
        )


def test_the_janitor_finishes_a_charge_whose_answer_was_lost(
    wallet: Account, simulator_admin: httpx.Client, django_capture_on_commit_callbacks: Any
) -> None:
    payment = _unsent_payment(wallet, django_capture_on_commit_callbacks)
    attempt = PaymentAttempt.objects.get(payment=payment)
    # The provider charged, and then the worker died before anything was recorded.
    charged = adapter_get("stripe").authorize(
        idempotency_key=attempt.public_id,
        amount=5_000,
        currency="USD",
        payment_method="pm_card_visa",
        capture=True,
        reference=payment.public_id,
    )
    assert charged.status == "succeeded"

    assert tasks.recover_attempts.delay().get() == 1
    assert tasks.recover_attempts.delay().get() == 0  # nothing left to do

    payment.refresh_from_db()
    attempt.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert attempt.provider_reference == charged.reference == payment.provider_reference
    assert _charges(simulator_admin, attempt.public_id) == 1
    assert LedgerEntry.objects.filter(account=wallet).count() == 1
    assert invariant_violations() == {}


def test_the_janitor_makes_a_call_that_never_reached_the_provider(
    wallet: Account, simulator_admin: httpx.Client, django_capture_on_commit_callbacks: Any
) -> None:
    payment = _unsent_payment(wallet, django_capture_on_commit_callbacks)
    attempt = PaymentAttempt.objects.get(payment=payment)
    assert _charges(simulator_admin, attempt.public_id) == 0

    tasks.recover_attempts.delay()

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert _charges(simulator_admin, attempt.public_id) == 1
    assert PaymentAttempt.objects.filter(payment=payment).count() == 1


def test_retries_exhausted_make_a_dead_letter_and_the_payment_stays_processing(
    wallet: Account,
    simulator_admin: httpx.Client,
    settings: Settings,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.PAYMENT_TASK_MAX_RETRIES = 2
    simulator_admin.post("/_simulator/faults", json={"unavailable": 3}).raise_for_status()
    payment = _unsent_payment(wallet, django_capture_on_commit_callbacks)
    attempt = PaymentAttempt.objects.get(payment=payment)

    assert tasks.run_attempt.delay(attempt.pk).get() == "dead_letter"

    payment.refresh_from_db()
    attempt.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert (attempt.status, attempt.tries) == (AttemptStatus.PENDING, 3)
    assert attempt.failure_code  # its last error
    dead_letter = DeadLetter.objects.get(object_id=attempt.public_id)
    assert (dead_letter.kind, dead_letter.task_name, dead_letter.args) == (
        "provider_call",
        "payments.tasks.run_attempt",
        [attempt.pk],
    )
    assert dead_letter.status == DeadLetterStatus.OPEN and dead_letter.last_error
    assert _charges(simulator_admin, attempt.public_id) == 0

    # The provider is back: the operator retries the dead letter, the payment ends.
    with django_capture_on_commit_callbacks(execute=True):
        dead_letter_retry(dead_letter=dead_letter)

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert _charges(simulator_admin, attempt.public_id) == 1
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetterStatus.RESOLVED  # retried, and the work ended
    assert AuditLog.objects.filter(
        action="dead_letter.retried", object_id=attempt.public_id
    ).exists()


def test_an_attempt_the_janitor_cannot_finish_becomes_a_dead_letter(
    wallet: Account,
    simulator_admin: httpx.Client,
    settings: Settings,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.PAYMENT_RECOVERY_MAX_ROUNDS = 2
    payment = _unsent_payment(wallet, django_capture_on_commit_callbacks)
    attempt = PaymentAttempt.objects.get(payment=payment)
    for provider in PROVIDERS:
        circuit_force(provider, state="open")

    tasks.recover_attempts.delay()
    assert not DeadLetter.objects.exists()
    tasks.recover_attempts.delay()
    tasks.recover_attempts.delay()  # past its rounds: no longer picked

    attempt.refresh_from_db()
    assert attempt.recovery_rounds == 2
    [dead_letter] = DeadLetter.objects.filter(object_id=attempt.public_id)
    assert "circuit_open" in dead_letter.last_error
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING


def test_dead_letters_are_retried_from_the_admin(
    wallet: Account, simulator_admin: httpx.Client, django_capture_on_commit_callbacks: Any
) -> None:
    payment = _unsent_payment(wallet, django_capture_on_commit_callbacks)
    attempt = PaymentAttempt.objects.get(payment=payment)
    dead_letter = DeadLetter.objects.create(
        kind="provider_call",
        task_name="payments.tasks.run_attempt",
        args=[attempt.pk],
        object_type="payment_attempt",
        object_id=attempt.public_id,
        last_error="provider_unavailable",
    )
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-12345")
    client = Client()
    client.force_login(staff)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:audit_deadletter_changelist"),
            {"action": "retry_selected", "_selected_action": [dead_letter.pk]},
        )

    assert response.status_code == 302
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    row = AuditLog.objects.get(action="dead_letter.retried", object_id=attempt.public_id)
    assert (row.actor_type, row.actor) == ("staff", "ops")
    # Retried once: a second retry of the same dead letter is refused.
    client.post(
        reverse("admin:audit_deadletter_changelist"),
        {"action": "retry_selected", "_selected_action": [dead_letter.pk]},
    )
    assert AuditLog.objects.filter(action="dead_letter.retried").count() == 1


def test_a_cancel_the_provider_shows_captured_books_the_capture_not_a_cancel(
    wallet: Account, simulator_admin: httpx.Client, django_capture_on_commit_callbacks: Any
) -> None:
    """A cancel whose outcome the janitor learns: the provider shows the payment captured
    (by a capture we never recorded), not canceled. The money was taken: the cancel failed
    and the capture is booked, never the payment canceled with nothing posted."""
    assert wallet.merchant is not None
    with django_capture_on_commit_callbacks(execute=True):
        payment = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=5_000,
            currency="USD",
            payment_method="pm_card_visa",
            capture_method="manual",
        )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REQUIRES_CAPTURE
    captured = adapter_get("stripe").capture(
        idempotency_key="att_made_at_the_provider",
        reference=payment.provider_reference,
        amount=5_000,
        currency="USD",
    )
    assert captured.status == "succeeded"
    with django_capture_on_commit_callbacks(execute=False):  # its task never ran
        payment_cancel(payment=payment)

    tasks.recover_attempts.delay()

    payment.refresh_from_db()
    cancel = PaymentAttempt.objects.get(payment=payment, kind="cancel")
    assert (cancel.status, cancel.failure_code) == (AttemptStatus.FAILED, "payment_captured")
    assert (payment.status, payment.amount_captured) == (PaymentStatus.SUCCEEDED, 5_000)
    assert LedgerEntry.objects.filter(account=wallet).get().amount == 5_000
    assert invariant_violations() == {}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("operation", ["capture", "cancel"])
def test_an_authorization_the_provider_released_ends_the_payment_canceled(
    wallet: Account,
    simulator_admin: httpx.Client,
    django_capture_on_commit_callbacks: Any,
    operation: str,
    provider: str,
) -> None:
    """The provider released the authorization on its own (its capture window ended
    before our capture_before): a capture or cancel it refuses for the payment's state is
    not left declined with the payment requiring capture for ever (and the deadline task
    asking a cancel again at every run); the payment's state at the provider decides."""
    assert wallet.merchant is not None
    wallet.merchant.default_provider = provider
    with django_capture_on_commit_callbacks(execute=True):
        payment = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=5_000,
            currency="USD",
            payment_method="pm_card_visa",
            capture_method="manual",
        )
    payment.refresh_from_db()
    assert payment.provider == provider
    released = adapter_get(provider).cancel(
        idempotency_key="att_released_by_the_provider", reference=payment.provider_reference
    )
    assert released.status == "succeeded"

    with django_capture_on_commit_callbacks(execute=True):
        if operation == "capture":
            payment_capture(payment=payment)
        else:
            payment_cancel(payment=payment)

    payment.refresh_from_db()
    attempt = PaymentAttempt.objects.get(payment=payment, kind=operation)
    assert attempt.is_final
    assert payment.status == PaymentStatus.CANCELED
    assert not LedgerEntry.objects.filter(account=wallet).exists()


def test_a_dead_letter_of_a_charge_that_could_not_be_posted_is_resolved_when_it_is(
    wallet: Account, simulator_admin: httpx.Client, django_capture_on_commit_callbacks: Any
) -> None:
    """The provider charged, the posting was refused (the destination frozen): a dead
    letter. Once the account is active again the janitor posts the charge, and the dead
    letter no longer asks an operator for anything."""
    payment = _unsent_payment(wallet, django_capture_on_commit_callbacks)
    attempt = PaymentAttempt.objects.get(payment=payment)
    Account.objects.filter(pk=wallet.pk).update(status=AccountStatus.FROZEN)
    assert tasks.run_attempt.delay(attempt.pk).get() == "dead_letter"
    dead_letter = DeadLetter.objects.get(object_id=attempt.public_id)
    assert dead_letter.status == DeadLetterStatus.OPEN

    Account.objects.filter(pk=wallet.pk).update(status=AccountStatus.ACTIVE)
    assert tasks.recover_attempts.delay().get() == 1

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert _charges(simulator_admin, attempt.public_id) == 1
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetterStatus.RESOLVED
