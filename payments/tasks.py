"""Payments' Celery tasks: thin, idempotent (an attempt already final is left alone), late
acknowledged and rejected when their worker dies, so a killed worker's task is delivered
again and makes the same call with the same idempotency key."""

import logging
import random

from celery import Task, shared_task
from celery.exceptions import Retry
from django.conf import settings

from audit.services import dead_letter_record
from core.exceptions import DomainError
from payments.attempts import attempt_run, attempts_recover_due
from payments.models import PaymentAttempt
from payments.outcomes import ATTEMPT_TASK
from payments.payments import authorizations_cancel_expired
from payments.webhooks import (
    WEBHOOK_TASK,
    Outcome,
    provider_webhook_bury,
    provider_webhook_process,
    provider_webhook_tries,
    provider_webhooks_sweep,
)

logger = logging.getLogger(__name__)


def retry_delay(
    retries: int, retry_after: float | None = None, *, base_seconds: float | None = None
) -> float:
    """Seconds before try `retries + 1`: exponential from `base_seconds`
    (PAYMENT_TASK_BACKOFF_SECONDS unless given), capped, with full jitter; never sooner
    than the provider's Retry-After, nor later than the cap (a Retry-After of `inf` or of
    years is no countdown a broker can hold)."""
    cap = settings.PAYMENT_TASK_BACKOFF_MAX_SECONDS
    base = settings.PAYMENT_TASK_BACKOFF_SECONDS if base_seconds is None else base_seconds
    ceiling = min(cap, base * 2**retries)
    delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not crypto
    return min(max(delay, retry_after or 0.0), cap)


def _dead_letter(task: Task, attempt_id: int, last_error: str) -> None:
    attempt = PaymentAttempt.objects.get(pk=attempt_id)
    dead_letter_record(
        kind="provider_call",
        task_name=task.name,
        args=[attempt_id],
        object_type="payment_attempt",
        object_id=attempt.public_id,
        last_error=last_error,
        attempts=attempt.tries,
    )


@shared_task(
    bind=True, name=ATTEMPT_TASK, acks_late=True, reject_on_worker_lost=True, max_retries=None
)
def run_attempt(self: Task, attempt_id: int) -> str | Retry:
    """Make a payment attempt's provider call and apply the answer; on an error or an
    unknown outcome, again later with the same attempt and key, up to
    PAYMENT_TASK_MAX_RETRIES times, then a dead letter (the payment stays processing)."""
    try:
        applied = attempt_run(attempt_id=attempt_id)
    except DomainError as error:  # the answer could not be applied (a frozen account)
        _dead_letter(self, attempt_id, f"{error.code}: {error.message}")
        return "dead_letter"
    attempt = applied.attempt
    if not applied.retry:
        return str(attempt.status)
    if self.request.retries >= settings.PAYMENT_TASK_MAX_RETRIES:
        _dead_letter(
            self,
            attempt_id,
            f"{attempt.failure_code}: {attempt.failure_message} "
            f"(after {self.request.retries + 1} tries)",
        )
        return "dead_letter"
    # Eagerly (the demo) there is no broker to wait in: Celery's apply() runs the retry it
    # is handed back at once. A worker raises it, and the broker redelivers it later.
    eager = bool(self.request.is_eager)
    retry = self.retry(
        countdown=retry_delay(self.request.retries, applied.retry_after), throw=not eager
    )
    return retry


@shared_task(name="payments.tasks.recover_attempts", acks_late=True, reject_on_worker_lost=True)
def recover_attempts() -> int:
    """The janitor, scheduled by Celery beat (CELERY_BEAT_SCHEDULE)."""
    return attempts_recover_due()


@shared_task(
    name="payments.tasks.cancel_expired_authorizations", acks_late=True, reject_on_worker_lost=True
)
def cancel_expired_authorizations() -> int:
    """SPEC "Authorization deadline", scheduled by Celery beat (CELERY_BEAT_SCHEDULE)."""
    return authorizations_cancel_expired()


@shared_task(
    bind=True, name=WEBHOOK_TASK, acks_late=True, reject_on_worker_lost=True, max_retries=None
)
def process_provider_webhook(self: Task, webhook_id: int) -> str | Retry:
    """Process a stored provider webhook (payments.webhooks); parked, it is tried again
    with backoff (PROVIDER_WEBHOOK_RETRY_SECONDS, doubled), and after
    PROVIDER_WEBHOOK_MAX_TRIES tries in all it is dead: a dead letter. Eagerly (the demo)
    a parked webhook is left parked: the janitor asks the provider about its attempt."""
    try:
        processed = provider_webhook_process(webhook_id=webhook_id)
        outcome, reason = processed.outcome, processed.reason
    except Exception as error:  # its attempt could not be settled now (a frozen account)
        logger.exception("provider webhook %s could not be processed", webhook_id)
        outcome, reason = Outcome.PARKED, f"{type(error).__name__}: {error}"
    if outcome == Outcome.PROCESSED or self.request.is_eager:
        return str(outcome)
    if provider_webhook_tries(webhook_id=webhook_id) >= settings.PROVIDER_WEBHOOK_MAX_TRIES:
        provider_webhook_bury(webhook_id=webhook_id, reason=reason)
        return "dead"
    delay = retry_delay(self.request.retries, base_seconds=settings.PROVIDER_WEBHOOK_RETRY_SECONDS)
    return self.retry(countdown=delay)


@shared_task(name="payments.tasks.sweep_provider_webhooks", acks_late=True)
def sweep_provider_webhooks() -> int:
    """Scheduled by Celery beat (CELERY_BEAT_SCHEDULE): webhooks whose task was not sent."""
    return provider_webhooks_sweep()
