"""Making an attempt's provider call, and finding out what became of one (the janitor, after
Kill Bill's): the only code of the payments domain that talks to a provider. No database
transaction is open while a provider is called; the answer is applied to the attempt's
owner by `attempt_result_apply`. The top of the domain: it imports the owners (payments,
refunds, payouts), none of which imports it.
"""

import logging
import time
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.services import dead_letter_record
from payments.models import AttemptKind, AttemptStatus, PaymentAttempt
from payments.outcomes import ATTEMPT_TASK, Applied, attempt_recovery_round
from payments.payments import payment_attempt_apply
from payments.payouts import payout_attempt_apply
from payments.providers.base import DeclineClass, OperationKind, ProviderResult, ResultStatus
from payments.providers.registry import adapter_get
from payments.providers.results import result_checked, result_unknown
from payments.refunds import refund_attempt_apply

logger = logging.getLogger(__name__)


def attempt_result_apply(
    *, attempt_id: int, result: ProviderResult, latency_ms: int | None = None
) -> Applied:
    """Apply a provider's answer to an attempt of any kind and its owner, in one
    transaction of the owner's (`payment_attempt_apply`, `refund_attempt_apply`,
    `payout_attempt_apply`): the attempt's outcome (and latency), and the owner's new
    state with its ledger posting, event and audit row. Each locks its owner first and
    reads the attempt again under that lock: an attempt already final is left as it is,
    so an answer applied twice (a redelivered task, the janitor, a webhook) changes
    nothing and posts nothing more. A decline of class `temporary` counts as an error:
    the call is made again.
    """
    if result.status == ResultStatus.DECLINED and result.decline_class == DeclineClass.TEMPORARY:
        result = replace(result, status=ResultStatus.ERROR)
    kind, payment_id = PaymentAttempt.objects.values_list("kind", "payment_id").get(pk=attempt_id)
    if kind == AttemptKind.REFUND:
        return refund_attempt_apply(attempt_id=attempt_id, result=result, latency_ms=latency_ms)
    if kind == AttemptKind.PAYOUT:
        return payout_attempt_apply(attempt_id=attempt_id, result=result, latency_ms=latency_ms)
    return payment_attempt_apply(
        attempt_id=attempt_id, result=result, latency_ms=latency_ms, payment_id=payment_id
    )


def _call(attempt: PaymentAttempt) -> ProviderResult:
    """The provider call the attempt stands for, with its id as the idempotency key."""
    adapter = adapter_get(attempt.provider)
    key = attempt.public_id
    if attempt.kind == AttemptKind.REFUND:
        refund = attempt.refund
        # attempt_names_exactly_its_owner; a refund names its amount
        assert refund is not None and attempt.amount is not None  # noqa: S101
        return adapter.refund(
            idempotency_key=key,
            payment_reference=refund.payment.provider_reference,
            amount=attempt.amount,
            currency=attempt.currency,
            reference=refund.public_id,
        )
    if attempt.kind == AttemptKind.PAYOUT:
        payout = attempt.payout
        # attempt_names_exactly_its_owner; a payout names its amount
        assert payout is not None and attempt.amount is not None  # noqa: S101
        return adapter.payout(
            idempotency_key=key,
            amount=attempt.amount,
            currency=attempt.currency,
            destination=payout.destination,
            reference=payout.public_id,
        )
    payment = attempt.payment
    assert payment is not None  # noqa: S101 - attempt_payment_operation_names_its_payment
    if attempt.kind == AttemptKind.AUTHORIZE:
        assert attempt.amount is not None  # noqa: S101 - an authorization names its amount
        return adapter.authorize(
            idempotency_key=key,
            amount=attempt.amount,
            currency=attempt.currency,
            payment_method=payment.payment_method,
            capture=payment.capture_method == "automatic",
            reference=payment.public_id,
        )
    if attempt.kind == AttemptKind.CAPTURE:
        assert attempt.amount is not None  # noqa: S101 - a capture names its amount
        return adapter.capture(
            idempotency_key=key,
            reference=payment.provider_reference,
            amount=attempt.amount,
            currency=attempt.currency,
        )
    return adapter.cancel(idempotency_key=key, reference=payment.provider_reference)


# The operations on a payment the provider already holds (by the payment's reference).
_ON_A_PAYMENT = (AttemptKind.CAPTURE, AttemptKind.CANCEL)


def _unresolved(attempt_id: int) -> PaymentAttempt | None:
    attempt = PaymentAttempt.objects.select_related("payment", "refund__payment", "payout").get(
        pk=attempt_id
    )
    return None if attempt.is_final else attempt


def attempt_run(*, attempt_id: int) -> Applied:
    """Make the attempt's call (again, with the same key, if it was made before) and apply
    the answer. An attempt already final is returned as it is: nothing is called."""
    attempt = _unresolved(attempt_id)
    if attempt is None:
        return Applied(PaymentAttempt.objects.get(pk=attempt_id))
    started = time.monotonic()
    result = _call(attempt)
    latency_ms = round((time.monotonic() - started) * 1000)
    if _refused_for_its_state(attempt, result):
        result = _state_now(attempt, result)
    return attempt_result_apply(attempt_id=attempt_id, result=result, latency_ms=latency_ms)


def _refused_for_its_state(attempt: PaymentAttempt, result: ProviderResult) -> bool:
    """A capture or cancel the provider refuses because the payment is not in a state
    that allows it: the payment moved at the provider (its authorization released when its
    capture window ended, or captured there), which our records do not show yet."""
    return (
        attempt.kind in _ON_A_PAYMENT
        and result.status == ResultStatus.DECLINED
        and result.failure_code == "invalid_state"
    )


def _state_now(attempt: PaymentAttempt, refusal: ProviderResult) -> ProviderResult:
    """The payment's state at the provider when it is final (released, or captured), to
    apply instead of the refusal; else the refusal."""
    payment = attempt.payment
    assert payment is not None  # noqa: S101 - attempt_payment_operation_names_its_payment
    now = adapter_get(attempt.provider).retrieve(
        kind=OperationKind(attempt.kind), reference=payment.provider_reference
    )
    if now.status not in (ResultStatus.CANCELED, ResultStatus.SUCCEEDED):
        return refusal
    return _retrieved_checked(attempt, now)


def _asked_again_would_be_safe(attempt: PaymentAttempt, result: ProviderResult) -> bool:
    """The provider has nothing for the attempt's key (the call never reached it), or says
    the capture or cancel is not done: making the call again, with the same key, is the way
    to finish it."""
    if result.status == ResultStatus.UNKNOWN and result.failure_code == "not_found":
        return True
    return attempt.kind in _ON_A_PAYMENT and result.status == ResultStatus.REQUIRES_CAPTURE


def _retrieved_checked(attempt: PaymentAttempt, result: ProviderResult) -> ProviderResult:
    """What a retrieve says, as the attempt's outcome. A retrieve the provider refused (an
    error answer, 4xx: "no such object", a bad query) says nothing of the operation, which
    may have been done: an unknown outcome, never a decline. An answer about another
    amount or currency than the attempt asked (the amount captured, for a capture) is
    checked as the call's own answer is (the adapters' `result_checked`): unknown."""
    if result.status == ResultStatus.DECLINED and result.http_status is not None:
        return result_unknown(
            code="retrieve_refused",
            message=f"The provider refused to tell ({result.failure_message})",
            reference=result.reference,
            http_status=result.http_status,
            raw=result.raw,
        )
    capture = attempt.kind == AttemptKind.CAPTURE
    if attempt.kind == AttemptKind.CANCEL or (capture and result.status != ResultStatus.SUCCEEDED):
        return result  # no amount to check: a cancel, or a capture not done
    assert attempt.amount is not None  # noqa: S101 - an authorization or a capture names it
    return result_checked(
        result, amount=attempt.amount, currency=attempt.currency, captured=capture
    )


def attempt_recover(*, attempt_id: int) -> Applied:
    """Ask the provider what became of an unresolved attempt (by its reference, or by its
    idempotency key when the first answer was lost) and apply what it says; when it has
    nothing for the key, make the call again with that key (safe: the provider acts on a
    key once). A charge whose posting did not commit is finished here, posted once."""
    attempt = _unresolved(attempt_id)
    if attempt is None:
        return Applied(PaymentAttempt.objects.get(pk=attempt_id))
    reference = attempt.provider_reference
    if not reference and attempt.kind in _ON_A_PAYMENT:
        payment = attempt.payment
        assert payment is not None  # noqa: S101 - attempt_payment_operation_names_its_payment
        reference = payment.provider_reference  # a capture or cancel acts on the payment
    result = adapter_get(attempt.provider).retrieve(
        kind=OperationKind(attempt.kind), reference=reference, idempotency_key=attempt.public_id
    )
    if _asked_again_would_be_safe(attempt, result):
        return attempt_run(attempt_id=attempt_id)
    return attempt_result_apply(attempt_id=attempt_id, result=_retrieved_checked(attempt, result))


def attempts_recover_due() -> int:
    """The janitor's round (Celery beat): every attempt, of any kind (a payment's
    operation, a refund, a payout), whose outcome is unknown, or that
    has been pending with no news for PAYMENT_RECOVERY_AFTER_SECONDS, is asked about. One
    that still cannot finish after PAYMENT_RECOVERY_MAX_ROUNDS rounds becomes a dead
    letter, and is left to the operator. Returns how many attempts ended."""
    quiet_since = timezone.now() - timedelta(seconds=settings.PAYMENT_RECOVERY_AFTER_SECONDS)
    due = PaymentAttempt.objects.filter(
        status__in=[AttemptStatus.PENDING, AttemptStatus.UNKNOWN],  # the index's condition
        updated_at__lte=quiet_since,
        recovery_rounds__lt=settings.PAYMENT_RECOVERY_MAX_ROUNDS,
    ).order_by("pk")
    ended = 0
    for attempt_id in list(due.values_list("pk", flat=True)):
        last_error = ""
        try:
            applied = attempt_recover(attempt_id=attempt_id)
        except Exception as error:  # one attempt's trouble must not stop the round
            logger.exception("could not recover payment attempt %s", attempt_id)
            applied, last_error = None, f"{type(error).__name__}: {error}"
        if applied is not None and applied.attempt.is_final:
            ended += 1
            continue
        rounds = attempt_recovery_round(attempt_id=attempt_id)
        if rounds >= settings.PAYMENT_RECOVERY_MAX_ROUNDS:
            attempt = PaymentAttempt.objects.get(pk=attempt_id)
            if applied is not None:
                last_error = f"{attempt.failure_code}: {attempt.failure_message}"
            dead_letter_record(
                kind="provider_call",
                task_name=ATTEMPT_TASK,
                args=[attempt_id],
                object_type="payment_attempt",
                object_id=attempt.public_id,
                last_error=f"not resolved after {rounds} recovery rounds; last: {last_error}",
                attempts=attempt.tries,
            )
    return ended
