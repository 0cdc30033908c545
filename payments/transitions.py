"""The one table of a payment's status changes (SPEC §3): every change goes through
`payment_transition`, which refuses any other. PostgreSQL holds the same table
(payments/0004: a trigger refuses an UPDATE of `status` outside it), and the check
constraint `payment_status_consistent` ties each status to the fields it implies."""

from core.exceptions import InvalidState
from payments.models import Payment, PaymentStatus

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
