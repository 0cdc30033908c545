"""What becomes of a provider call, for every owner of attempts (a payment, a refund, a
payout): the attempt's task sent on commit, and the attempt's outcome recorded from the
provider's answer under its owner's lock.

The owners' modules (payments.payments, payments.refunds, payments.payouts, with
payments.held) build on this one and apply an answer to themselves; payments.attempts,
the top of the domain, makes the calls and sends each answer to its owner
(`attempt_result_apply`). This module imports none of them.
"""

from collections.abc import Callable
from dataclasses import dataclass

from celery import current_app
from django.db import transaction
from django.utils import timezone

from audit.services import dead_letters_resolve
from payments.models import AttemptStatus, PaymentAttempt
from payments.providers.base import DeclineClass, ProviderResult, ResultStatus

# The task that makes an attempt's provider call (payments.tasks), named rather than
# imported: tasks are an interface and call the services, not the other way round.
ATTEMPT_TASK = "payments.tasks.run_attempt"


def attempt_enqueue_on_commit(attempt: PaymentAttempt) -> None:
    """Send the attempt's task once the current transaction commits. Robust: if the
    broker cannot take it, the attempt stays pending and the janitor
    (`attempts_recover_due`) makes the call later."""
    attempt_id = attempt.pk
    transaction.on_commit(lambda: current_app.tasks[ATTEMPT_TASK].delay(attempt_id), robust=True)


@dataclass(frozen=True)
class Applied:
    """What became of an attempt once a provider's answer was applied. `retry`: the
    operation is known not done or its outcome unknown; make the call again with the same
    key (after `retry_after` seconds, when the provider said)."""

    attempt: PaymentAttempt
    retry: bool = False
    retry_after: float | None = None


def _attempt_error(attempt: PaymentAttempt, result: ProviderResult, fallback: str) -> None:
    attempt.failure_code = (result.failure_code or fallback)[:64]
    attempt.failure_message = result.failure_message[:500]


def attempt_end(attempt: PaymentAttempt, status: str, result: ProviderResult) -> None:
    """The attempt (unsaved) final with `status`: its end time, the provider's reference,
    and for a decline or a failure its code, message and decline class."""
    attempt.status = status
    attempt.completed_at = timezone.now()
    if result.reference:
        attempt.provider_reference = result.reference
    if status == AttemptStatus.SUCCEEDED:
        attempt.failure_code = attempt.failure_message = ""
    elif status == AttemptStatus.DECLINED:
        attempt.decline_class = result.decline_class or DeclineClass.HARD
        _attempt_error(attempt, result, "card_declined")
    else:
        attempt.decline_class = result.decline_class or ""
        _attempt_error(attempt, result, "processing_error")


def attempt_refused(attempt: PaymentAttempt, result: ProviderResult) -> None:
    """The provider refused the operation for good: declined, or failed."""
    final = (
        AttemptStatus.DECLINED if result.status == ResultStatus.DECLINED else AttemptStatus.FAILED
    )
    attempt_end(attempt, final, result)


def attempt_pending(attempt: PaymentAttempt, result: ProviderResult) -> Applied:
    """Accepted; the outcome comes later (the janitor asks, or a webhook tells)."""
    if result.reference:
        attempt.provider_reference = result.reference
    attempt.failure_code = attempt.failure_message = ""
    return Applied(attempt)


def attempt_not_done(attempt: PaymentAttempt, result: ProviderResult) -> Applied:
    """The call is known not done, or may not be: the attempt stays open (pending, or
    unknown once the provider may have acted) with its last error, to be made again."""
    if result.status == ResultStatus.UNKNOWN:
        attempt.status = AttemptStatus.UNKNOWN
    _attempt_error(attempt, result, str(result.status))
    if result.reference:
        attempt.provider_reference = result.reference
    return Applied(attempt, retry=True, retry_after=result.retry_after)


def attempt_outcome_apply(
    *,
    attempt_id: int,
    result: ProviderResult,
    latency_ms: int | None,
    handle: Callable[[PaymentAttempt, ProviderResult], Applied],
) -> Applied:
    """The part of applying an answer every owner (payment, refund, payout) shares; call
    it inside the owner's transaction, its owner's row locked. The attempt is locked and
    read again: one already final is left as it is (an answer applied twice changes
    nothing). Otherwise its try is counted, `handle` records its outcome (and changes the
    owner), it is saved, and once final its dead letters, if any, are resolved: also that
    of a first answer whose posting was refused (a frozen account), which left no try
    counted."""
    attempt = PaymentAttempt.objects.select_for_update(no_key=True).get(pk=attempt_id)
    if attempt.is_final:
        return Applied(attempt)
    attempt.tries += 1
    if latency_ms is not None:
        attempt.latency_ms = latency_ms
    applied = handle(attempt, result)
    attempt.save()
    if attempt.is_final:
        dead_letters_resolve(object_type="payment_attempt", object_id=attempt.public_id)
    return applied


def attempt_recovery_round(*, attempt_id: int) -> int:
    """Count one more janitor round on an attempt still unresolved; returns the count."""
    with transaction.atomic():
        attempt = PaymentAttempt.objects.select_for_update(no_key=True).get(pk=attempt_id)
        if attempt.is_final:
            return attempt.recovery_rounds
        attempt.recovery_rounds += 1
        attempt.save(update_fields=["recovery_rounds", "updated_at"])
    return attempt.recovery_rounds
