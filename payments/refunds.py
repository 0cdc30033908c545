"""Refunds (SPEC §3): all or part of a succeeded payment's captured amount given back
through the payment's provider, as a saga (docs/payments.md, "Refunds"):

1. admission (`refund_create`, one transaction): the payment locked, what is left to
   refund checked and counted in `amount_refunded`, the amount held on the payment's
   destination account, the refund and its attempt recorded, the task sent on commit;
2. the provider call (payments.attempts, the attempt's id its idempotency key);
3. the answer (`refund_attempt_apply`): succeeded, the hold captured into provider
   clearing; failed, the hold released and `amount_refunded` given back.
"""

from collections.abc import Mapping

from django.db import transaction

from accounts.models import Merchant
from audit.services import audit_log_record
from core.amounts import validate_amount
from core.db import retry_on_conflict
from core.exceptions import InvalidState, NotFound, ValidationError
from core.validation import validate_metadata
from ledger.holds import hold_create
from payments.held import held_answer_apply, held_record
from payments.locks import payment_lock, refund_lock
from payments.models import (
    AttemptKind,
    Payment,
    PaymentAttempt,
    PaymentStatus,
    Refund,
    RefundReason,
    RefundStatus,
)
from payments.outcomes import Applied, attempt_enqueue_on_commit, attempt_outcome_apply
from payments.providers.base import ProviderResult
from payments.representations import payment_data, refund_data
from payments.transitions import refund_transition


def _refund_validate(
    *, amount: int | None, reason: str, metadata: Mapping[str, str] | None
) -> dict[str, str]:
    if amount is not None:
        validate_amount(amount)
    if reason not in ("", *RefundReason.values):
        raise ValidationError(
            f"reason must be one of {', '.join(RefundReason.values)}", param="reason"
        )
    return validate_metadata(metadata)


def _payment_refunded_change(payment: Payment, delta: int) -> None:
    """Count `delta` more (or, negative, less) in the payment's `amount_refunded`, with an
    audit row. Under the payment's lock; the check constraint
    `payment_refunded_within_captured_within_amount` backs it."""
    old = payment_data(payment)
    payment.amount_refunded += delta
    payment.save(update_fields=["amount_refunded", "updated_at"])
    audit_log_record(
        action="payment.updated",
        object_type="payment",
        object_id=payment.public_id,
        old_values=old,
        new_values=payment_data(payment),
    )


@retry_on_conflict
def refund_create(
    *,
    merchant: Merchant,
    payment: Payment,
    amount: int | None = None,
    reason: str = "",
    metadata: Mapping[str, str] | None = None,
) -> Refund:
    """Give back `amount` (default: all that is left to refund) of a succeeded payment.

    In one transaction: the payment locked (so concurrent refunds of it are admitted one at
    a time), `amount_refunded` raised, the amount held on the payment's destination
    account, the refund (`pending`) and its attempt recorded with their audit rows; the
    provider is called by the attempt's task, sent after commit. Refused with nothing
    written and nothing sent: another merchant's payment (`NotFound`), a payment not
    succeeded (`InvalidState`), more than is left (`ValidationError` `amount_too_large`),
    not enough available on the destination account (`InsufficientFunds`) or an inactive
    one (`AccountInactive`)."""
    metadata = _refund_validate(amount=amount, reason=reason, metadata=metadata)
    if payment.merchant_id != merchant.pk:
        raise NotFound("no such payment", param="payment")
    with transaction.atomic():
        locked = payment_lock(payment.pk)
        if locked.status != PaymentStatus.SUCCEEDED:
            raise InvalidState(
                f"payment {locked.public_id} is {locked.status}; only a succeeded payment "
                "can be refunded",
                code="payment_invalid_state",
                param="payment",
            )
        left = locked.amount_captured - locked.amount_refunded
        refund_amount = left if amount is None else amount
        if left == 0 or refund_amount > left:
            raise ValidationError(
                f"{'nothing' if left == 0 else left} {locked.currency} is left to refund on "
                f"payment {locked.public_id} ({locked.amount_captured} captured, "
                f"{locked.amount_refunded} refunded or being refunded)",
                code="charge_already_refunded" if left == 0 else "amount_too_large",
                param="amount",
            )
        _payment_refunded_change(locked, refund_amount)
        refund = Refund(
            merchant=merchant,
            payment=locked,
            amount=refund_amount,
            currency=locked.currency,
            reason=reason,
            status=RefundStatus.PENDING,
            provider=locked.provider,
            metadata=metadata,
        )
        # The payment, then its destination account (hold_create locks it): ADR 0002.
        refund.hold = hold_create(
            account=locked.destination_account,
            amount=refund_amount,
            description=f"Refund {refund.public_id} of {locked.public_id}",
        )
        refund.save(force_insert=True)
        attempt = PaymentAttempt.objects.create(
            refund=refund,
            kind=AttemptKind.REFUND,
            provider=refund.provider,
            routing_reason="the payment's provider",
            amount=refund_amount,
            currency=refund.currency,
        )
        audit_log_record(
            action="refund.created",
            object_type="refund",
            object_id=refund.public_id,
            new_values={
                **refund_data(refund),
                "attempt": attempt.public_id,
                "hold": refund.hold.public_id,
            },
        )
        attempt_enqueue_on_commit(attempt)
    return refund


@retry_on_conflict
def refund_attempt_apply(
    *, attempt_id: int, result: ProviderResult, latency_ms: int | None = None
) -> Applied:
    """Apply a provider's answer to a refund's attempt (payments.attempts'
    `attempt_result_apply` sends refunds here), in one transaction: the payment locked,
    then the refund, then (hold capture or release) the accounts and the hold. Succeeded:
    the hold captured into provider clearing, `refund.succeeded`. Failed or refused: the
    hold released, the amount no longer counted in the payment's `amount_refunded`,
    `refund.failed`. An attempt already final changes nothing."""
    with transaction.atomic():
        refund_id = PaymentAttempt.objects.values_list("refund_id", flat=True).get(pk=attempt_id)
        payment_id = Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
        payment = payment_lock(payment_id)
        refund = refund_lock(refund_id)
        old = refund_data(refund)
        applied = attempt_outcome_apply(
            attempt_id=attempt_id,
            result=result,
            latency_ms=latency_ms,
            handle=lambda attempt, answer: held_answer_apply(
                refund,
                attempt,
                answer,
                done=RefundStatus.SUCCEEDED,
                failed=RefundStatus.FAILED,
                transition=refund_transition,
            ),
        )
        if refund.status == RefundStatus.FAILED and old["status"] != RefundStatus.FAILED:
            _payment_refunded_change(payment, -refund.amount)
        held_record(refund, old, refund_data(refund))
    return applied
