"""The rules a payment lives by, each in one place: the transition table (and PostgreSQL's
copy of it), the attempt's immutability once final, and the fee formula."""

from datetime import timedelta
from itertools import product
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account, PaymentProvider, SystemPurpose
from accounts.system import system_account_get
from audit.models import AuditLog
from core.exceptions import InvalidState
from ledger.models import LedgerTransactionKind
from ledger.services import Leg, ledger_transaction_post
from payments.fees import fee_compute, payment_fee, pricing_set
from payments.models import (
    AttemptKind,
    AttemptStatus,
    CaptureMethod,
    Payment,
    PaymentAttempt,
    PaymentStatus,
)
from payments.providers.registry import PROVIDERS
from payments.tasks import retry_delay
from payments.transitions import TRANSITIONS, payment_transition
from tests.factories import AccountFactory, MerchantFactory

pytestmark = pytest.mark.django_db

STATUSES = list(PaymentStatus.values)


def _payment(account: Account, **fields: object) -> Payment:
    values: dict[str, object] = {
        "merchant": account.merchant,
        "destination_account": account,
        "amount": 1_000,
        "currency": account.currency,
        "payment_method": "pm_card_visa",
        "capture_method": CaptureMethod.MANUAL,
        "status": PaymentStatus.PROCESSING,
        "provider": "stripe",
    }
    values.update(fields)
    return Payment.objects.create(**values)


def _fields_for(status: str, account: Account) -> dict[str, object]:
    """What a payment in `status` must carry (payment_status_consistent)."""
    if status == PaymentStatus.REQUIRES_CAPTURE:
        return {"amount_capturable": 1_000, "capture_before": timezone.now() + timedelta(days=7)}
    if status == PaymentStatus.FAILED:
        return {"failure_code": "card_declined"}
    if status == PaymentStatus.SUCCEEDED:
        clearing = system_account_get(currency="USD", purpose=SystemPurpose.PROVIDER_CLEARING)
        posted = ledger_transaction_post(
            kind=LedgerTransactionKind.PAYMENT,
            legs=[Leg(account=clearing, amount=-1_000), Leg(account=account, amount=1_000)],
        )
        return {"ledger_transaction": posted, "amount_captured": 1_000, "net": 1_000}
    return {}


def _payment_in(status: str, account: Account) -> Payment:
    return _payment(account, status=status, **_fields_for(status, account))


@pytest.mark.parametrize(("old", "new"), list(product(STATUSES, STATUSES)))
def test_the_transition_table_refuses_every_other_move(old: str, new: str) -> None:
    payment = Payment(public_id="pay_x", status=old)
    if new in TRANSITIONS[old]:
        payment_transition(payment, new)
        assert payment.status == new
    else:
        with pytest.raises(InvalidState, match=f"is {old}; it cannot become {new}"):
            payment_transition(payment, new)


def test_statuses_move_as_spec_says() -> None:
    spec = {
        "processing": {"requires_capture", "succeeded", "failed"},
        "requires_capture": {"succeeded", "canceled"},
        "succeeded": set(),
        "failed": set(),
        "canceled": set(),
    }
    assert spec == TRANSITIONS


@pytest.mark.parametrize(
    ("old", "new"), [(old, new) for old, new in product(STATUSES, STATUSES) if old != new]
)
def test_postgresql_refuses_the_moves_the_table_refuses(old: str, new: str) -> None:
    account = AccountFactory.create()
    payment = _payment_in(old, account)
    fields = {**_fields_for(new, account)} if new != PaymentStatus.SUCCEEDED else {}
    refused_by_trigger = False
    try:
        with transaction.atomic():
            Payment.objects.filter(pk=payment.pk).update(status=new, **fields)
    except DatabaseError as error:
        refused_by_trigger = "cannot go from" in str(error)
    assert refused_by_trigger == (new not in TRANSITIONS[old])


def test_a_payment_that_contradicts_its_status_is_refused() -> None:
    account = AccountFactory.create()
    for status, fields in [
        (PaymentStatus.SUCCEEDED, {}),  # no posting
        (PaymentStatus.FAILED, {}),  # no failure code
        (PaymentStatus.REQUIRES_CAPTURE, {"amount_capturable": 1_000}),  # no deadline
        (PaymentStatus.PROCESSING, {"fee": 10}),  # a fee on nothing captured
    ]:
        with pytest.raises(IntegrityError), transaction.atomic():
            _payment(account, status=status, **fields)


def _attempt(payment: Payment, **fields: object) -> PaymentAttempt:
    return PaymentAttempt.objects.create(
        payment=payment,
        kind=AttemptKind.AUTHORIZE,
        provider="stripe",
        amount=payment.amount,
        currency=payment.currency,
        **fields,
    )


def test_an_unresolved_attempt_may_change() -> None:
    attempt = _attempt(_payment(AccountFactory.create()))
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        status=AttemptStatus.UNKNOWN, failure_code="timeout", tries=1
    )
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        status=AttemptStatus.SUCCEEDED, completed_at=timezone.now()
    )
    assert PaymentAttempt.objects.get(pk=attempt.pk).status == AttemptStatus.SUCCEEDED


@pytest.mark.parametrize("final", [AttemptStatus.SUCCEEDED, AttemptStatus.FAILED])
def test_postgresql_refuses_to_change_or_delete_a_final_attempt(final: str) -> None:
    attempt = _attempt(_payment(AccountFactory.create()), status=final, completed_at=timezone.now())
    with pytest.raises(DatabaseError, match="it is final"), transaction.atomic():
        PaymentAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.PENDING)
    with pytest.raises(DatabaseError, match="it is final"), transaction.atomic():
        PaymentAttempt.objects.filter(pk=attempt.pk).update(provider_reference="pi_other")
    with pytest.raises(DatabaseError, match="it is final"), transaction.atomic():
        PaymentAttempt.objects.filter(pk=attempt.pk).delete()
    assert PaymentAttempt.objects.get(pk=attempt.pk).status == final


def test_a_payment_has_one_operation_in_flight_at_most() -> None:
    payment = _payment(AccountFactory.create())
    _attempt(payment)
    with pytest.raises(IntegrityError), transaction.atomic():
        _attempt(payment, status=AttemptStatus.UNKNOWN)


@pytest.mark.parametrize(
    ("amount", "percent_bps", "fixed_fee", "fee"),
    [
        (1_000, 0, 0, 0),
        (1_000, 290, 30, 59),  # 29 + 30
        (50, 100, 0, 0),  # 0.5 rounds half to even: 0
        (150, 100, 0, 2),  # 1.5 rounds to 2
        (250, 100, 0, 2),  # 2.5 rounds to 2
        (350, 100, 0, 4),  # 3.5 rounds to 4
        (149, 100, 0, 1),
        (151, 100, 0, 2),
        (20, 0, 30, 20),  # never more than the amount
        (10**12, 10_000, 0, 10**12),
        (1, 10_000, 10**12, 1),
    ],
)
def test_fee_is_rounded_half_to_even_and_never_more_than_the_amount(
    amount: int, percent_bps: int, fixed_fee: int, fee: int
) -> None:
    assert fee_compute(amount=amount, percent_bps=percent_bps, fixed_fee=fixed_fee) == fee


def test_a_merchant_without_pricing_pays_no_fee_and_pricing_is_per_currency() -> None:
    merchant = MerchantFactory.create()
    assert payment_fee(merchant_id=merchant.pk, currency="USD", amount=10_000) == 0
    pricing_set(merchant=merchant, currency="eur", percent_bps=150, fixed_fee=25)
    assert payment_fee(merchant_id=merchant.pk, currency="USD", amount=10_000) == 0
    assert payment_fee(merchant_id=merchant.pk, currency="EUR", amount=10_000) == 175


def test_pricing_changes_are_audited_with_what_they_replace() -> None:
    merchant = MerchantFactory.create()
    pricing_set(merchant=merchant, currency="USD", percent_bps=290, fixed_fee=30)
    pricing_set(merchant=merchant, currency="USD", percent_bps=250, fixed_fee=30)
    row = AuditLog.objects.filter(action="pricing.set", object_id=merchant.public_id).first()
    assert row is not None
    assert row.old_values == {"currency": "USD", "percent_bps": 290, "fixed_fee": 30}
    assert row.new_values == {"currency": "USD", "percent_bps": 250, "fixed_fee": 30}
    assert row.changed_fields == ["percent_bps"]


def test_a_merchant_can_name_exactly_the_providers_there_are() -> None:
    assert set(PaymentProvider.values) == set(PROVIDERS)


@pytest.mark.parametrize("retry_after", [float("inf"), 1e12, 3_600.0])
def test_the_task_waits_at_most_its_backoff_cap_whatever_the_provider_says(
    settings: Any, retry_after: float
) -> None:
    """A provider's Retry-After is waited for, up to the task's cap: an endless or absurd
    one (`inf`, 10^12 s) made a countdown Celery could not schedule (OverflowError), or a
    task held in a worker for years."""
    settings.PAYMENT_TASK_BACKOFF_MAX_SECONDS = 300
    assert retry_delay(0, retry_after) == 300
    assert retry_delay(0, 5.0) >= 5.0
