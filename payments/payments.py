"""Payments (pay-ins, SPEC §3): a customer's payment method charged through a provider and
the money, less the platform's fee, credited to one of the merchant's accounts.

The request services (`payment_create`, `payment_capture`, `payment_cancel`) never call a
provider: each records an attempt (its id the idempotency key the provider will get) and
has its task enqueued once the transaction commits. The provider's answer comes back
through `payment_attempt_apply`, the one service that changes a payment after its
creation (payments/attempts.py calls the provider and hands it the answer; the attempt
outcome machinery all owners share is payments/outcomes.py).
"""

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, AccountKind, AccountStatus, Customer, Merchant, SystemPurpose
from accounts.system import system_accounts_get
from audit.services import (
    audit_log_build,
    audit_log_record,
    change_record,
    event_build,
)
from core.amounts import validate_amount
from core.currencies import normalize_currency
from core.db import database_now, insert_rows, insert_rows_together, retry_on_conflict
from core.exceptions import AccountInactive, Declined, InvalidState, NotFound, ValidationError
from core.validation import max_length_of, validate_metadata, validate_text
from ledger.models import LedgerTransactionKind
from ledger.services import Leg, ledger_transaction_post
from payments.fees import payment_fee
from payments.locks import payment_lock
from payments.models import (
    AttemptKind,
    AttemptStatus,
    CaptureMethod,
    Payment,
    PaymentAttempt,
    PaymentStatus,
)
from payments.outcomes import (
    Applied,
    attempt_end,
    attempt_enqueue_on_commit,
    attempt_not_done,
    attempt_outcome_apply,
    attempt_pending,
    attempt_refused,
)
from payments.providers.base import ProviderResult, ResultStatus
from payments.providers.registry import provider_route
from payments.representations import payment_data
from payments.transitions import payment_transition

# A payment method is the provider's token for it: pm_card_visa, pm_1Nv…
PAYMENT_METHOD = re.compile(r"pm_[0-9A-Za-z_]+")
PAYMENT_METHOD_MAX_LENGTH = 255


# --- creating a payment ---------------------------------------------------------------


def _validate_payment(
    *,
    merchant: Merchant,
    destination: Account,
    customer: Customer | None,
    amount: int,
    currency: str,
    payment_method: str,
    capture_method: str,
    description: str,
    metadata: Mapping[str, str] | None,
) -> tuple[str, dict[str, str]]:
    """Refuse a malformed payment before anything is written; return its currency (upper
    case) and the metadata to store."""
    validate_amount(amount)
    currency = normalize_currency(currency)
    validate_text(payment_method, param="payment_method", max_length=PAYMENT_METHOD_MAX_LENGTH)
    if not PAYMENT_METHOD.fullmatch(payment_method):
        raise ValidationError(
            "payment_method must be a payment method id such as pm_card_visa "
            "(pm_ followed by letters, digits and underscores)",
            param="payment_method",
        )
    if capture_method not in CaptureMethod.values:
        raise ValidationError(
            f"capture_method must be one of {', '.join(CaptureMethod.values)}",
            param="capture_method",
        )
    validate_text(
        description, param="description", max_length=max_length_of(Payment, "description")
    )
    metadata = validate_metadata(metadata)
    if customer is not None and customer.merchant_id != merchant.pk:
        raise NotFound("no such customer", param="customer")
    merchant_wallet_check(
        merchant=merchant, account=destination, currency=currency, role="destination"
    )
    return currency, metadata


def merchant_wallet_check(
    *, merchant: Merchant, account: Account, currency: str, role: str
) -> None:
    """Money from a provider comes into, or goes out of, one of the merchant's active
    wallets in the operation's currency (`role`: "destination" of a payment, "source" of
    a payout, naming the parameter `{role}_account`); raise `NotFound`, `ValidationError`
    `currency_mismatch` or `AccountInactive` otherwise."""
    param = f"{role}_account"
    if account.kind != AccountKind.WALLET or account.merchant_id != merchant.pk:
        raise NotFound("no such account", param=param)
    if account.currency != currency:
        raise ValidationError(
            f"currency must be the {role} account's, {account.currency}",
            code="currency_mismatch",
            param="currency",
        )
    if account.status != AccountStatus.ACTIVE:
        raise AccountInactive(f"account {account.public_id} is {account.status}", param=param)


@retry_on_conflict
def payment_create(
    *,
    merchant: Merchant,
    destination: Account,
    amount: int,
    currency: str,
    payment_method: str,
    customer: Customer | None = None,
    capture_method: str = CaptureMethod.AUTOMATIC,
    description: str = "",
    metadata: Mapping[str, str] | None = None,
) -> Payment:
    """Take `amount` from `payment_method` into `destination` (one of the merchant's
    wallets, in `currency`), through the provider routing picks.

    Returns the payment `processing`, written in one transaction with its first attempt
    (authorize, pending, with the provider and why it was chosen), its event and audit
    row; the provider is called by the attempt's task, sent after commit. Malformed
    requests raise `ValidationError` (an unknown account or customer `NotFound`, an
    inactive account `AccountInactive`) and store nothing.
    """
    currency, metadata = _validate_payment(
        merchant=merchant,
        destination=destination,
        customer=customer,
        amount=amount,
        currency=currency,
        payment_method=payment_method,
        capture_method=capture_method,
        description=description,
        metadata=metadata,
    )
    provider, routing_reason = provider_route(preferred=merchant.default_provider)
    now = timezone.now()
    payment = Payment(
        merchant=merchant,
        customer=customer,
        destination_account=destination,
        amount=amount,
        currency=currency,
        payment_method=payment_method,
        capture_method=capture_method,
        status=PaymentStatus.PROCESSING,
        provider=provider,
        description=description,
        metadata=metadata,
        created_at=now,
    )
    attempt = PaymentAttempt(
        kind=AttemptKind.AUTHORIZE,
        provider=provider,
        routing_reason=routing_reason[: max_length_of(PaymentAttempt, "routing_reason")],
        amount=amount,
        currency=currency,
        created_at=now,
    )
    with transaction.atomic():
        insert_rows([payment])
        attempt.payment = payment
        data = payment_data(payment)
        event = event_build(
            merchant_id=merchant.pk,
            type="payment.processing",
            object_type="payment",
            object_id=payment.public_id,
            data=data,
        )
        insert_rows_together(
            [
                attempt,
                event,
                audit_log_build(
                    action="payment.processing",
                    object_type="payment",
                    object_id=payment.public_id,
                    new_values={**data, "attempt": attempt.public_id, "routing": routing_reason},
                ),
            ]
        )
        attempt_enqueue_on_commit(attempt)
    payment.created_with = (attempt, event)
    return payment


# --- capture and cancel, asked by the merchant or the deadline ------------------------


def _lock_for_operation(payment: Payment, operation: str) -> Payment:
    """Lock the payment for a capture or cancel: it must require capture and have no
    other operation in flight."""
    locked = payment_lock(payment.pk)
    if locked.status != PaymentStatus.REQUIRES_CAPTURE:
        raise InvalidState(
            f"payment {locked.public_id} is {locked.status}; only a payment that requires "
            f"capture can be {operation}",
            code="payment_invalid_state",
        )
    in_flight = (
        PaymentAttempt.objects.filter(
            payment=locked, status__in=[AttemptStatus.PENDING, AttemptStatus.UNKNOWN]
        )
        .values_list("public_id", "kind")
        .first()
    )
    if in_flight is not None:
        raise InvalidState(
            f"payment {locked.public_id} has a {in_flight[1]} in flight ({in_flight[0]}); "
            "retry once it has ended",
            code="payment_operation_in_flight",
        )
    return locked


def _operation_record(
    payment: Payment, *, kind: str, amount: int | None, reason: str = ""
) -> PaymentAttempt:
    attempt = PaymentAttempt(
        payment=payment,
        kind=kind,
        provider=payment.provider,
        amount=amount,
        currency=payment.currency,
    )
    insert_rows([attempt])
    audit_log_record(
        action=f"payment.{kind}_requested",
        object_type="payment",
        object_id=payment.public_id,
        new_values={"attempt": attempt.public_id, "amount": amount},
        reason=reason,
    )
    attempt_enqueue_on_commit(attempt)
    return attempt


@retry_on_conflict
def payment_capture(*, payment: Payment, amount: int | None = None) -> Payment:
    """Ask the provider to capture `amount` (default: all that is capturable; the rest is
    released) of a payment that requires capture. Records a capture attempt and sends its
    task after commit; the payment becomes `succeeded` when the provider confirms.

    Refused with nothing written: another status or an operation in flight
    (`InvalidState`), more than capturable (`ValidationError`), past `capture_before`
    (`Declined` `authorization_expired`)."""
    if amount is not None:
        validate_amount(amount)
    with transaction.atomic():
        locked = _lock_for_operation(payment, "captured")
        capture = locked.amount_capturable if amount is None else amount
        if capture > locked.amount_capturable:
            raise ValidationError(
                f"amount {capture} is more than the {locked.amount_capturable} "
                f"{locked.currency} capturable",
                code="amount_too_large",
                param="amount",
            )
        assert locked.capture_before is not None  # noqa: S101 - payment_status_consistent
        if database_now() >= locked.capture_before:
            raise Declined(
                f"the authorization of payment {locked.public_id} expired at "
                f"{locked.capture_before.isoformat()}; it can only be canceled",
                code="authorization_expired",
            )
        _operation_record(locked, kind=AttemptKind.CAPTURE, amount=capture)
    return locked


@retry_on_conflict
def payment_cancel(*, payment: Payment, reason: str = "") -> Payment:
    """Ask the provider to release a payment's authorization. Records a cancel attempt and
    sends its task after commit; the payment becomes `canceled` when the provider
    confirms. Refused (`InvalidState`) unless the payment requires capture with nothing
    else in flight."""
    with transaction.atomic():
        locked = _lock_for_operation(payment, "canceled")
        _operation_record(locked, kind=AttemptKind.CANCEL, amount=None, reason=reason)
    return locked


def authorizations_cancel_expired() -> int:
    """SPEC "Authorization deadline": cancel every payment still waiting for its capture
    past `capture_before`, each on its own; returns how many cancels were asked. One with
    an operation in flight is left to the next run."""
    due = Payment.objects.filter(
        status=PaymentStatus.REQUIRES_CAPTURE, capture_before__lte=database_now()
    ).order_by("pk")
    asked = 0
    for payment in due.iterator():
        try:
            payment_cancel(payment=payment, reason="authorization_expired")
        except InvalidState:
            continue
        asked += 1
    return asked


# --- applying a provider's answer ------------------------------------------------------

# A handler applies one answer to an attempt (unsaved) and its payment (unsaved): what
# became of the attempt, and the payment's fields it changed.
_Handled = tuple[Applied, list[str]]


def _payment_succeed(payment: Payment, captured: int) -> list[str]:
    """Captured: provider clearing −captured, destination +net, platform fees +fee, in one
    ledger transaction, the payment's one-to-one (so never posted twice)."""
    payment_transition(payment, PaymentStatus.SUCCEEDED)
    fee = payment_fee(merchant_id=payment.merchant_id, currency=payment.currency, amount=captured)
    net = captured - fee
    purposes = [SystemPurpose.PROVIDER_CLEARING, *([SystemPurpose.PLATFORM_FEES] if fee else [])]
    system = system_accounts_get(currency=payment.currency, purposes=purposes)
    legs = [Leg(account=system[SystemPurpose.PROVIDER_CLEARING], amount=-captured)]
    if net:
        legs.append(Leg(account=payment.destination_account, amount=net))
    if fee:
        legs.append(Leg(account=system[SystemPurpose.PLATFORM_FEES], amount=fee))
    payment.ledger_transaction = ledger_transaction_post(
        kind=LedgerTransactionKind.PAYMENT, legs=legs, description=f"Payment {payment.public_id}"
    )
    payment.amount_captured, payment.fee, payment.net = captured, fee, net
    payment.amount_capturable = 0
    return ["status", "ledger_transaction", "amount_captured", "fee", "net", "amount_capturable"]


def _payment_fail(payment: Payment, attempt: PaymentAttempt) -> list[str]:
    payment_transition(payment, PaymentStatus.FAILED)
    payment.failure_code = attempt.failure_code
    payment.failure_message = attempt.failure_message
    payment.decline_class = attempt.decline_class
    return ["status", "failure_code", "failure_message", "decline_class"]


def _payment_cancel(payment: Payment) -> list[str]:
    payment_transition(payment, PaymentStatus.CANCELED)
    payment.amount_capturable = 0
    return ["status", "amount_capturable"]


def _apply_authorize(payment: Payment, attempt: PaymentAttempt, result: ProviderResult) -> _Handled:
    status = result.status
    fields: list[str]
    if status == ResultStatus.SUCCEEDED:  # authorized and captured
        attempt_end(attempt, AttemptStatus.SUCCEEDED, result)
        captured = min(result.amount_captured or payment.amount, payment.amount)
        fields = _payment_succeed(payment, captured)
    elif status == ResultStatus.REQUIRES_CAPTURE:
        attempt_end(attempt, AttemptStatus.SUCCEEDED, result)
        payment_transition(payment, PaymentStatus.REQUIRES_CAPTURE)
        payment.amount_capturable = min(result.amount_capturable or payment.amount, payment.amount)
        payment.capture_before = database_now() + timedelta(
            days=settings.PAYMENT_AUTHORIZATION_DAYS
        )
        fields = ["status", "amount_capturable", "capture_before"]
    elif status == ResultStatus.PENDING:
        attempt_pending(attempt, result)
        fields = []
    elif status in (ResultStatus.DECLINED, ResultStatus.FAILED, ResultStatus.CANCELED):
        attempt_refused(attempt, result)
        fields = _payment_fail(payment, attempt)
    else:
        return attempt_not_done(attempt, result), []
    if attempt.provider_reference and payment.provider_reference != attempt.provider_reference:
        payment.provider_reference = attempt.provider_reference
        fields.append("provider_reference")
    return Applied(attempt), fields


def _apply_capture(payment: Payment, attempt: PaymentAttempt, result: ProviderResult) -> _Handled:
    status = result.status
    if status == ResultStatus.SUCCEEDED:
        attempt_end(attempt, AttemptStatus.SUCCEEDED, result)
        asked = attempt.amount or payment.amount_capturable
        captured = min(result.amount_captured or asked, payment.amount)
        return Applied(attempt), _payment_succeed(payment, captured)
    if status == ResultStatus.CANCELED:  # the authorization is gone (expired, released)
        attempt_end(attempt, AttemptStatus.FAILED, result)
        return Applied(attempt), _payment_cancel(payment)
    if status in (ResultStatus.DECLINED, ResultStatus.FAILED):
        # The authorization stands: the merchant may capture again or cancel, and the
        # deadline releases it otherwise.
        attempt_refused(attempt, result)
        return Applied(attempt), []
    if status == ResultStatus.PENDING:
        return attempt_pending(attempt, result), []
    return attempt_not_done(attempt, result), []  # ERROR, UNKNOWN, or still REQUIRES_CAPTURE


def _apply_cancel(payment: Payment, attempt: PaymentAttempt, result: ProviderResult) -> _Handled:
    status = result.status
    if status == ResultStatus.SUCCEEDED and result.amount_captured:
        # The provider shows the payment captured, not canceled (a capture we never
        # recorded): the cancel failed, and the money it took is booked, never dropped.
        attempt_end(
            attempt,
            AttemptStatus.FAILED,
            replace(
                result,
                failure_code="payment_captured",
                failure_message="The provider shows the payment captured: it cannot be canceled.",
            ),
        )
        return Applied(attempt), _payment_succeed(
            payment, min(result.amount_captured, payment.amount)
        )
    if status in (ResultStatus.SUCCEEDED, ResultStatus.CANCELED):
        attempt_end(attempt, AttemptStatus.SUCCEEDED, result)
        return Applied(attempt), _payment_cancel(payment)
    if status in (ResultStatus.DECLINED, ResultStatus.FAILED):
        attempt_refused(attempt, result)
        return Applied(attempt), []
    if status == ResultStatus.PENDING:
        return attempt_pending(attempt, result), []
    return attempt_not_done(attempt, result), []  # ERROR, UNKNOWN, or still REQUIRES_CAPTURE


_APPLY = {
    AttemptKind.AUTHORIZE: _apply_authorize,
    AttemptKind.CAPTURE: _apply_capture,
    AttemptKind.CANCEL: _apply_cancel,
}


def _record(payment: Payment, old: dict[str, Any], fields: list[str]) -> None:
    """Save a payment's change with its audit row and, on a new status, its event."""
    payment.save(update_fields=[*fields, "updated_at"])
    new = payment_data(payment)
    if old["status"] == payment.status:
        audit_log_record(
            action="payment.updated",
            object_type="payment",
            object_id=payment.public_id,
            old_values=old,
            new_values=new,
        )
        return
    change_record(
        action=f"payment.{payment.status}",
        event_type=f"payment.{payment.status}",
        merchant_id=payment.merchant_id,
        object_type="payment",
        object_id=payment.public_id,
        old_values=old,
        new_values=new,
    )


@retry_on_conflict
def payment_attempt_apply(
    *,
    attempt_id: int,
    result: ProviderResult,
    latency_ms: int | None = None,
    payment_id: int | None = None,
) -> Applied:
    """Apply a provider's answer to an attempt of a payment (authorize, capture, cancel;
    payments.attempts' `attempt_result_apply` sends them here) in one transaction: the
    attempt's outcome (and latency), and the payment's new state with its ledger posting,
    event and audit row.

    The payment is locked first (then, when money moves, its accounts), and the attempt
    read again under that lock: an attempt already final is left as it is, so an answer
    applied twice (a redelivered task, the janitor) changes nothing and posts nothing
    more. `payment_id`, the attempt's, when the caller has read it already (one statement
    less on the payments' hot path).
    """
    with transaction.atomic():
        if payment_id is None:
            payment_id = PaymentAttempt.objects.values_list("payment_id", flat=True).get(
                pk=attempt_id
            )
        payment = payment_lock(payment_id)
        old = payment_data(payment)
        fields: list[str] = []

        def handle(attempt: PaymentAttempt, result: ProviderResult) -> Applied:
            applied, changed = _APPLY[AttemptKind(attempt.kind)](payment, attempt, result)
            fields.extend(changed)
            return applied

        applied = attempt_outcome_apply(
            attempt_id=attempt_id, result=result, latency_ms=latency_ms, handle=handle
        )
        if fields:
            _record(payment, old, fields)
    return applied
