"""What refunds and payouts share: money held from admission, then, on the provider's
answer, the hold captured into the currency's provider clearing account (the money has
left us) or released (it has not). Both happen in the transaction that records the
answer, so a refund or payout never ends with its hold still active.
"""

from collections.abc import Callable
from typing import Any

from accounts.models import SystemPurpose
from accounts.system import system_account_get
from audit.services import audit_log_record, change_record
from ledger.holds import hold_capture, hold_release
from payments.models import AttemptStatus, PaymentAttempt, Payout, Refund
from payments.outcomes import (
    Applied,
    attempt_end,
    attempt_not_done,
    attempt_pending,
    attempt_refused,
)
from payments.providers.base import ProviderResult, ResultStatus

HeldOperation = Refund | Payout


def held_answer_apply(
    operation: HeldOperation,
    attempt: PaymentAttempt,
    result: ProviderResult,
    *,
    done: str,
    failed: str,
    transition: Callable[[Any, str], None],
) -> Applied:
    """Apply one answer to a refund's or payout's attempt and to the operation (unsaved;
    its accounts and hold are written here, under their locks):

    - done at the provider: the hold captured into provider clearing, one ledger
      transaction (account −amount, clearing +amount), the operation `done`;
    - refused or failed there: the hold released, the operation `failed` with the code;
    - pending: the provider's reference kept, the outcome asked for later;
    - an error or an unknown outcome: the call is made again with the same key.
    """
    status = result.status
    applied = Applied(attempt)
    if status == ResultStatus.SUCCEEDED:
        attempt_end(attempt, AttemptStatus.SUCCEEDED, result)
        clearing = system_account_get(
            currency=operation.currency, purpose=SystemPurpose.PROVIDER_CLEARING
        )
        hold = hold_capture(hold=operation.hold, destination=clearing)
        operation.hold = hold
        operation.ledger_transaction = hold.ledger_transaction
        transition(operation, done)
    elif status in (ResultStatus.DECLINED, ResultStatus.FAILED, ResultStatus.CANCELED):
        attempt_refused(attempt, result)
        noun = operation._meta.model_name
        operation.hold = hold_release(
            hold=operation.hold, reason=f"{noun} {operation.public_id} {failed}"
        )
        transition(operation, failed)
        operation.failure_code = attempt.failure_code
        operation.failure_message = (
            attempt.failure_message or f"The provider reports the {noun} {failed}."
        )[:500]
    elif status == ResultStatus.PENDING:
        applied = attempt_pending(attempt, result)
    else:  # ERROR, UNKNOWN, or an answer that means nothing for this operation
        applied = attempt_not_done(attempt, result)
    if attempt.provider_reference and operation.provider_reference != attempt.provider_reference:
        operation.provider_reference = attempt.provider_reference
    return applied


def held_record(operation: HeldOperation, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Save what an answer changed on a refund or payout: a new status with its audit row
    and event (`refund.succeeded`, `payout.paid`, …), or only the provider's reference with
    an audit row; nothing when nothing changed."""
    if old == new:
        return
    operation.save(
        update_fields=[
            "status",
            "failure_code",
            "failure_message",
            "provider_reference",
            "ledger_transaction",
            "updated_at",
        ]
    )
    noun = operation._meta.model_name
    assert noun is not None  # noqa: S101 - a model has a name
    if old["status"] == operation.status:
        audit_log_record(
            action=f"{noun}.updated",
            object_type=noun,
            object_id=operation.public_id,
            old_values=old,
            new_values=new,
        )
        return
    change_record(
        action=f"{noun}.{operation.status}",
        event_type=f"{noun}.{operation.status}",
        merchant_id=operation.merchant_id,
        object_type=noun,
        object_id=operation.public_id,
        old_values=old,
        new_values=new,
    )
