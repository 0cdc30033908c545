"""The one table of each money object's status changes (SPEC §3): every change of a
payment goes through `payment_transition`, of a refund `refund_transition`, of a payout
`payout_transition`, which refuse any other. PostgreSQL holds the same tables
(payments/0004 and 0005: triggers refuse an UPDATE of `status` outside them), and check
constraints (`payment_status_consistent`, `refund_status_consistent`,
`payout_status_consistent`) tie each status to the fields it implies."""

from core.exceptions import InvalidState
from payments.models import Payment, PaymentStatus, Payout, PayoutStatus, Refund, RefundStatus

TRANSITIONS: dict[str, frozenset[str]] = {
    # Authorized and captured at once, authorized for a manual capture, or refused.
    PaymentStatus.PROCESSING: frozenset(
        {PaymentStatus.SUCCEEDED, PaymentStatus.REQUIRES_CAPTURE, PaymentStatus.FAILED}
    ),
    # Captured, or released (by the merchant, past its deadline, or by the provider). A
    # refused capture leaves the authorization standing: capture again, or cancel.
    PaymentStatus.REQUIRES_CAPTURE: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED}),
    PaymentStatus.SUCCEEDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
    PaymentStatus.CANCELED: frozenset(),
}


def transition_allowed(old: str, new: str) -> bool:
    return new in TRANSITIONS[old]


def payment_transition(payment: Payment, new: str) -> None:
    """Set `payment.status` to `new` (unsaved), or raise InvalidState naming both."""
    if not transition_allowed(payment.status, new):
        raise InvalidState(
            f"payment {payment.public_id} is {payment.status}; it cannot become {new}",
            code="payment_invalid_state",
        )
    payment.status = new


# A refund or a payout waits for the provider, then ends one way or the other, for good.
REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}
PAYOUT_TRANSITIONS: dict[str, frozenset[str]] = {
    PayoutStatus.PENDING: frozenset({PayoutStatus.PAID, PayoutStatus.FAILED}),
    PayoutStatus.PAID: frozenset(),
    PayoutStatus.FAILED: frozenset(),
}


def refund_transition(refund: Refund, new: str) -> None:
    """Set `refund.status` to `new` (unsaved), or raise InvalidState naming both."""
    if new not in REFUND_TRANSITIONS[refund.status]:
        raise InvalidState(
            f"refund {refund.public_id} is {refund.status}; it cannot become {new}",
            code="refund_invalid_state",
        )
    refund.status = new


def payout_transition(payout: Payout, new: str) -> None:
    """Set `payout.status` to `new` (unsaved), or raise InvalidState naming both."""
    if new not in PAYOUT_TRANSITIONS[payout.status]:
        raise InvalidState(
            f"payout {payout.public_id} is {payout.status}; it cannot become {new}",
            code="payout_invalid_state",
        )
    payout.status = new
