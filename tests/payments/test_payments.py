"""The payment services, with providers' answers (ProviderResult values, as an adapter gives
them) applied through the one service that applies them: what each answer does to the
attempt, the payment, the ledger, the events and the audit trail."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.fixtures import Settings

from accounts.models import Account, AccountStatus, Merchant, SystemPurpose
from accounts.services import account_freeze, merchant_default_provider_set
from accounts.system import system_account_get
from audit.models import AuditLog, Event
from core.exceptions import AccountInactive, Declined, InvalidState, NotFound, ValidationError
from ledger.models import LedgerEntry, LedgerTransactionKind
from payments.attempts import attempt_result_apply
from payments.fees import pricing_set
from payments.locks import payment_lock
from payments.models import (
    AttemptKind,
    AttemptStatus,
    CaptureMethod,
    Payment,
    PaymentAttempt,
    PaymentStatus,
)
from payments.payments import (
    authorizations_cancel_expired,
    payment_cancel,
    payment_capture,
    payment_create,
)
from payments.providers.base import DeclineClass, ProviderResult, ResultStatus
from tests.factories import AccountFactory, CustomerFactory, MerchantFactory
from tests.invariants import invariant_violations

pytestmark = pytest.mark.django_db

CAPTURED = ProviderResult(
    status=ResultStatus.SUCCEEDED,
    reference="pi_1",
    amount=10_000,
    currency="USD",
    amount_captured=10_000,
)
AUTHORIZED = ProviderResult(
    status=ResultStatus.REQUIRES_CAPTURE,
    reference="pi_1",
    amount=10_000,
    currency="USD",
    amount_capturable=10_000,
)


@pytest.fixture
def merchant() -> Merchant:
    return MerchantFactory.create()


@pytest.fixture
def wallet(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant, currency="USD")


@pytest.fixture
def pay(
    merchant: Merchant, wallet: Account, django_capture_on_commit_callbacks: Any
) -> Callable[..., Payment]:
    """`pay(**fields)`: a payment of 100.00 USD into `wallet`, its task not run."""

    def make(**fields: Any) -> Payment:
        values: dict[str, Any] = {
            "merchant": merchant,
            "destination": wallet,
            "amount": 10_000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
        }
        values.update(fields)
        with django_capture_on_commit_callbacks(execute=False):
            return payment_create(**values)

    return make


def _attempt(payment: Payment, kind: str = AttemptKind.AUTHORIZE) -> PaymentAttempt:
    return PaymentAttempt.objects.filter(payment=payment, kind=kind).latest("id")


def _apply(payment: Payment, result: ProviderResult, kind: str = AttemptKind.AUTHORIZE) -> Any:
    applied = attempt_result_apply(attempt_id=_attempt(payment, kind).pk, result=result)
    payment.refresh_from_db()
    return applied


def _events(payment: Payment) -> list[str]:
    return list(
        Event.objects.filter(object_type="payment", object_id=payment.public_id)
        .order_by("id")
        .values_list("type", flat=True)
    )


def _postings(payment: Payment) -> dict[str, int]:
    entries = LedgerEntry.objects.filter(transaction__payment=payment).select_related("account")
    return {
        entry.account.system_purpose or entry.account.public_id: entry.amount for entry in entries
    }


def test_a_payment_is_written_processing_with_its_first_attempt_event_and_audit_row(
    merchant: Merchant, wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    customer = CustomerFactory.create(merchant=merchant)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        payment = payment_create(
            merchant=merchant,
            destination=wallet,
            amount=10_000,
            currency="usd",
            payment_method="pm_card_visa",
            customer=customer,
            description="Order 42",
            metadata={"order": "42"},
        )
    assert len(callbacks) == 1  # the attempt's task, sent only once committed
    assert (payment.status, payment.currency, payment.provider) == ("processing", "USD", "stripe")
    attempt = PaymentAttempt.objects.get(payment=payment)
    assert (attempt.kind, attempt.status, attempt.provider, attempt.routing_reason) == (
        "authorize",
        "pending",
        "stripe",
        "default",
    )
    assert (attempt.amount, attempt.currency) == (10_000, "USD")
    assert _events(payment) == ["payment.processing"]
    audit = AuditLog.objects.get(action="payment.processing", object_id=payment.public_id)
    assert audit.new_values["attempt"] == attempt.public_id
    assert audit.new_values["customer"] == customer.public_id


def test_the_merchants_default_provider_is_where_its_payments_go(
    merchant: Merchant, wallet: Account, pay: Callable[..., Payment]
) -> None:
    merchant_default_provider_set(merchant=merchant, provider="adyen")
    merchant.refresh_from_db()
    payment = pay(merchant=merchant)
    assert payment.provider == _attempt(payment).provider == "adyen"


def test_the_platform_default_provider_is_a_setting(
    pay: Callable[..., Payment], settings: Settings
) -> None:
    settings.PAYMENT_DEFAULT_PROVIDER = "adyen"
    assert pay().provider == "adyen"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"currency": "EUR"}, "currency"),
        ({"currency": "ZZZ"}, "currency"),
        ({"payment_method": "card_visa"}, "payment_method"),
        ({"payment_method": "pm_card visa"}, "payment_method"),
        ({"payment_method": "pm_card_\x00"}, "payment_method"),
        ({"payment_method": "pm_" + "a" * 253}, "payment_method"),
        ({"capture_method": "later"}, "capture_method"),
        ({"description": "x" * 501}, "description"),
        ({"metadata": {"k": 1}}, "metadata"),
    ],
)
def test_a_malformed_payment_is_refused_and_nothing_is_written(
    pay: Callable[..., Payment], fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        pay(**fields)
    assert raised.value.param == param
    assert not Payment.objects.exists() and not PaymentAttempt.objects.exists()


def test_another_merchants_account_or_customer_is_not_found(
    wallet: Account, pay: Callable[..., Payment]
) -> None:
    other = MerchantFactory.create()
    with pytest.raises(NotFound):
        pay(destination=AccountFactory.create(merchant=other))
    with pytest.raises(NotFound):
        pay(customer=CustomerFactory.create(merchant=other))
    assert not Payment.objects.exists()


def test_an_inactive_destination_is_declined(wallet: Account, pay: Callable[..., Payment]) -> None:
    account_freeze(account=wallet, reason="test")
    wallet.refresh_from_db()
    with pytest.raises(AccountInactive):
        pay(destination=wallet)
    assert not Payment.objects.exists()


def test_automatic_capture_succeeds_with_one_posting_of_amount_fee_and_net(
    merchant: Merchant, wallet: Account, pay: Callable[..., Payment]
) -> None:
    pricing_set(merchant=merchant, currency="USD", percent_bps=290, fixed_fee=30)
    payment = pay()

    _apply(payment, CAPTURED)

    assert payment.status == PaymentStatus.SUCCEEDED
    assert (payment.amount_captured, payment.fee, payment.net) == (10_000, 320, 9_680)
    assert payment.amount_capturable == 0
    assert payment.provider_reference == "pi_1"
    assert payment.ledger_transaction is not None
    assert payment.ledger_transaction.kind == LedgerTransactionKind.PAYMENT
    assert _postings(payment) == {
        SystemPurpose.PROVIDER_CLEARING: -10_000,
        wallet.public_id: 9_680,
        SystemPurpose.PLATFORM_FEES: 320,
    }
    attempt = _attempt(payment)
    assert (attempt.status, attempt.provider_reference, attempt.tries) == ("succeeded", "pi_1", 1)
    assert attempt.completed_at is not None
    assert _events(payment) == ["payment.processing", "payment.succeeded"]
    assert AuditLog.objects.filter(action="payment.succeeded", object_id=payment.public_id).exists()
    assert invariant_violations() == {}


def test_an_answer_applied_twice_posts_once(wallet: Account, pay: Callable[..., Payment]) -> None:
    payment = pay()
    _apply(payment, CAPTURED)
    applied = _apply(payment, CAPTURED)

    assert applied.attempt.tries == 1  # the second answer changed nothing
    assert LedgerEntry.objects.filter(account=wallet).count() == 1
    assert _events(payment) == ["payment.processing", "payment.succeeded"]
    wallet.refresh_from_db()
    assert wallet.balance == 10_000


def test_no_pricing_no_fee_leg(wallet: Account, pay: Callable[..., Payment]) -> None:
    payment = pay()
    _apply(payment, CAPTURED)
    assert (payment.fee, payment.net) == (0, 10_000)
    assert _postings(payment) == {
        SystemPurpose.PROVIDER_CLEARING: -10_000,
        wallet.public_id: 10_000,
    }


@pytest.mark.parametrize(
    ("decline_class", "code"),
    [
        (DeclineClass.SOFT, "insufficient_funds"),
        (DeclineClass.HARD, "expired_card"),
        (DeclineClass.FRAUD, "fraudulent"),
    ],
)
def test_a_decline_fails_the_payment_at_once_and_posts_nothing(
    pay: Callable[..., Payment], decline_class: DeclineClass, code: str
) -> None:
    payment = pay()
    applied = _apply(
        payment,
        ProviderResult(
            status=ResultStatus.DECLINED,
            reference="pi_1",
            decline_class=decline_class,
            failure_code=code,
            failure_message="Refused.",
        ),
    )
    assert not applied.retry
    assert payment.status == PaymentStatus.FAILED
    assert (payment.failure_code, payment.failure_message, payment.decline_class) == (
        code,
        "Refused.",
        decline_class,
    )
    assert payment.ledger_transaction is None and payment.fee == payment.net == 0
    attempt = _attempt(payment)
    assert (attempt.status, attempt.decline_class, attempt.failure_code) == (
        "declined",
        decline_class,
        code,
    )
    assert _events(payment) == ["payment.processing", "payment.failed"]
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize(
    ("result", "attempt_status"),
    [
        (
            ProviderResult(
                status=ResultStatus.ERROR,
                decline_class=DeclineClass.TEMPORARY,
                failure_code="provider_unavailable",
                retry_after=3.0,
            ),
            AttemptStatus.PENDING,
        ),
        (
            ProviderResult(
                status=ResultStatus.UNKNOWN,
                decline_class=DeclineClass.TEMPORARY,
                failure_code="timeout",
            ),
            AttemptStatus.UNKNOWN,
        ),
        (  # a temporary decline is retried, never final
            ProviderResult(
                status=ResultStatus.DECLINED,
                decline_class=DeclineClass.TEMPORARY,
                failure_code="issuer_unavailable",
            ),
            AttemptStatus.PENDING,
        ),
    ],
)
def test_an_error_or_unknown_outcome_leaves_the_payment_processing_to_be_asked_again(
    pay: Callable[..., Payment], result: ProviderResult, attempt_status: str
) -> None:
    payment = pay()
    applied = _apply(payment, result)

    assert applied.retry
    assert applied.retry_after == result.retry_after
    assert payment.status == PaymentStatus.PROCESSING
    attempt = _attempt(payment)
    assert (attempt.status, attempt.failure_code, attempt.tries) == (
        attempt_status,
        result.failure_code,
        1,
    )
    assert attempt.completed_at is None
    assert _events(payment) == ["payment.processing"]

    _apply(payment, CAPTURED)  # asked again with the same attempt: it ends
    assert payment.status == PaymentStatus.SUCCEEDED
    assert _attempt(payment).tries == 2
    assert PaymentAttempt.objects.filter(payment=payment).count() == 1


def test_a_pending_answer_keeps_its_reference_for_the_janitor(pay: Callable[..., Payment]) -> None:
    payment = pay()
    applied = _apply(payment, ProviderResult(status=ResultStatus.PENDING, reference="pi_async"))
    assert not applied.retry
    assert payment.status == PaymentStatus.PROCESSING
    assert payment.provider_reference == "pi_async"
    assert _attempt(payment).status == AttemptStatus.PENDING
    assert _attempt(payment).provider_reference == "pi_async"


def _authorized(pay: Callable[..., Payment]) -> Payment:
    payment = pay(capture_method=CaptureMethod.MANUAL)
    _apply(payment, AUTHORIZED)
    return payment


def test_manual_capture_waits_for_capture_until_its_deadline(
    pay: Callable[..., Payment], settings: Settings
) -> None:
    settings.PAYMENT_AUTHORIZATION_DAYS = 7
    payment = _authorized(pay)
    assert payment.status == PaymentStatus.REQUIRES_CAPTURE
    assert payment.amount_capturable == 10_000
    assert payment.capture_before is not None
    assert abs(payment.capture_before - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert _events(payment) == ["payment.processing", "payment.requires_capture"]
    assert not LedgerEntry.objects.exists()


def test_a_partial_capture_posts_what_was_captured_with_its_fee(
    merchant: Merchant,
    wallet: Account,
    pay: Callable[..., Payment],
    django_capture_on_commit_callbacks: Any,
) -> None:
    pricing_set(merchant=merchant, currency="USD", percent_bps=100, fixed_fee=0)
    payment = _authorized(pay)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        payment_capture(payment=payment, amount=6_050)
    assert len(callbacks) == 1
    capture = _attempt(payment, AttemptKind.CAPTURE)
    assert (capture.status, capture.amount, capture.provider) == ("pending", 6_050, "stripe")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REQUIRES_CAPTURE  # until the provider confirms

    _apply(
        payment,
        ProviderResult(status=ResultStatus.SUCCEEDED, reference="pi_1", amount_captured=6_050),
        AttemptKind.CAPTURE,
    )
    assert payment.status == PaymentStatus.SUCCEEDED
    # 1 % of 6,050 is 60.5: half to even, 60.
    assert (payment.amount_captured, payment.fee, payment.net) == (6_050, 60, 5_990)
    assert payment.amount_capturable == 0  # the rest released
    assert _postings(payment) == {
        SystemPurpose.PROVIDER_CLEARING: -6_050,
        wallet.public_id: 5_990,
        SystemPurpose.PLATFORM_FEES: 60,
    }
    assert _events(payment)[-1] == "payment.succeeded"
    assert invariant_violations() == {}


def test_capture_defaults_to_all_that_is_capturable(pay: Callable[..., Payment]) -> None:
    payment = _authorized(pay)
    payment_capture(payment=payment)
    assert _attempt(payment, AttemptKind.CAPTURE).amount == 10_000


def test_capture_of_more_than_capturable_is_refused(pay: Callable[..., Payment]) -> None:
    payment = _authorized(pay)
    with pytest.raises(ValidationError, match="10000 USD capturable") as raised:
        payment_capture(payment=payment, amount=10_001)
    assert (raised.value.code, raised.value.param) == ("amount_too_large", "amount")
    assert not PaymentAttempt.objects.filter(kind=AttemptKind.CAPTURE).exists()


@pytest.mark.parametrize("operation", [payment_capture, payment_cancel])
def test_capture_and_cancel_are_refused_unless_the_payment_requires_capture(
    pay: Callable[..., Payment], operation: Callable[..., Payment]
) -> None:
    payment = pay()
    with pytest.raises(InvalidState, match="is processing") as raised:
        operation(payment=payment)
    assert raised.value.code == "payment_invalid_state"
    _apply(payment, CAPTURED)
    with pytest.raises(InvalidState, match="is succeeded"):
        operation(payment=payment)


def test_a_second_operation_waits_for_the_first(pay: Callable[..., Payment]) -> None:
    payment = _authorized(pay)
    payment_capture(payment=payment, amount=100)
    with pytest.raises(InvalidState, match="has a capture in flight") as raised:
        payment_cancel(payment=payment)
    assert raised.value.code == "payment_operation_in_flight"


def test_capture_past_the_deadline_is_declined(pay: Callable[..., Payment]) -> None:
    payment = _authorized(pay)
    Payment.objects.filter(pk=payment.pk).update(capture_before=timezone.now() - timedelta(1))
    with pytest.raises(Declined) as raised:
        payment_capture(payment=payment)
    assert raised.value.code == "authorization_expired"


def test_a_refused_capture_leaves_the_authorization_standing(pay: Callable[..., Payment]) -> None:
    payment = _authorized(pay)
    payment_capture(payment=payment)
    _apply(
        payment,
        ProviderResult(
            status=ResultStatus.DECLINED, decline_class=DeclineClass.HARD, failure_code="x"
        ),
        AttemptKind.CAPTURE,
    )
    assert payment.status == PaymentStatus.REQUIRES_CAPTURE
    assert _attempt(payment, AttemptKind.CAPTURE).status == AttemptStatus.DECLINED
    payment_cancel(payment=payment)  # nothing in flight any more


def test_cancel_releases_the_authorization(pay: Callable[..., Payment]) -> None:
    payment = _authorized(pay)
    payment_cancel(payment=payment)
    _apply(payment, ProviderResult(status=ResultStatus.CANCELED, reference="pi_1"), "cancel")
    assert payment.status == PaymentStatus.CANCELED
    assert payment.amount_capturable == 0
    assert _attempt(payment, AttemptKind.CANCEL).status == AttemptStatus.SUCCEEDED
    assert _events(payment) == [
        "payment.processing",
        "payment.requires_capture",
        "payment.canceled",
    ]
    assert not LedgerEntry.objects.exists()


def test_authorizations_past_their_deadline_are_canceled(
    pay: Callable[..., Payment], django_capture_on_commit_callbacks: Any
) -> None:
    due, not_due = _authorized(pay), _authorized(pay)
    Payment.objects.filter(pk=due.pk).update(capture_before=timezone.now() - timedelta(1))
    with django_capture_on_commit_callbacks(execute=False):
        assert authorizations_cancel_expired() == 1
    assert _attempt(due, AttemptKind.CANCEL).status == AttemptStatus.PENDING
    assert not PaymentAttempt.objects.filter(payment=not_due, kind=AttemptKind.CANCEL).exists()
    assert (
        AuditLog.objects.get(action="payment.cancel_requested", object_id=due.public_id).reason
        == "authorization_expired"
    )
    with django_capture_on_commit_callbacks(execute=False):
        assert authorizations_cancel_expired() == 0  # its cancel is in flight


def test_a_frozen_destination_refuses_the_posting_and_nothing_changes(
    wallet: Account, pay: Callable[..., Payment]
) -> None:
    payment = pay()
    account_freeze(account=wallet, reason="test")
    with pytest.raises(AccountInactive):
        _apply(payment, CAPTURED)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert _attempt(payment).status == AttemptStatus.PENDING
    assert Account.objects.get(pk=wallet.pk).status == AccountStatus.FROZEN


def test_clearing_and_fees_balance_across_many_payments(
    merchant: Merchant, wallet: Account, pay: Callable[..., Payment]
) -> None:
    pricing_set(merchant=merchant, currency="USD", percent_bps=290, fixed_fee=30)
    for amount in (101, 999, 10_000, 12_345):
        _apply(pay(amount=amount), ProviderResult(status=ResultStatus.SUCCEEDED))
    clearing = system_account_get(currency="USD", purpose=SystemPurpose.PROVIDER_CLEARING)
    fees = system_account_get(currency="USD", purpose=SystemPurpose.PLATFORM_FEES)
    totals = Payment.objects.aggregate(captured=Sum("amount_captured"), fee=Sum("fee"))
    clearing.refresh_from_db()
    fees.refresh_from_db()
    wallet.refresh_from_db()
    assert clearing.balance == -totals["captured"]
    assert fees.balance == totals["fee"]
    assert wallet.balance == totals["captured"] - totals["fee"]
    assert invariant_violations() == {}


# --- the payment's lock -------------------------------------------------------------------


def _fields(instance: Any) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


@pytest.mark.parametrize("with_customer", [True, False])
def test_the_payment_lock_reads_what_the_orm_reads_in_one_statement(
    pay: Callable[..., Payment], merchant: Merchant, with_customer: bool
) -> None:
    customer = CustomerFactory.create(merchant=merchant, metadata={"k": "v"})
    payment = pay(customer=customer if with_customer else None, metadata={"b": "1", "aa": "2"})
    expected = Payment.objects.select_related("destination_account", "customer").get(pk=payment.pk)

    with CaptureQueriesContext(connection) as queries:
        locked = payment_lock(payment.pk)
    [statement] = [q["sql"] for q in queries.captured_queries]
    assert statement.endswith("FOR NO KEY UPDATE OF p")

    assert _fields(locked) == _fields(expected)
    assert _fields(locked.destination_account) == _fields(expected.destination_account)
    if with_customer:
        assert _fields(locked.customer) == _fields(expected.customer)
    else:
        assert locked.customer is None
    with pytest.raises(Payment.DoesNotExist):
        payment_lock(payment.pk + 1_000_000)


def test_applying_a_capture_is_a_fixed_number_of_statements(
    pay: Callable[..., Payment], merchant: Merchant
) -> None:
    # The savepoint (here; BEGIN in a worker); the attempt's payment; the payment locked;
    # the attempt locked; the pricing; both system accounts; the ledger transaction with
    # its audit row; the accounts locked; their balances; the entries; the attempt; the
    # payment; its audit row and event; its dead letters resolved; the savepoint released.
    pricing_set(merchant=merchant, currency="USD", percent_bps=250, fixed_fee=0)
    system_account_get(currency="USD", purpose=SystemPurpose.PROVIDER_CLEARING)  # exist
    system_account_get(currency="USD", purpose=SystemPurpose.PLATFORM_FEES)
    payment = pay()
    attempt = _attempt(payment)

    with CaptureQueriesContext(connection) as queries:
        attempt_result_apply(
            attempt_id=attempt.pk,
            result=ProviderResult(status=ResultStatus.SUCCEEDED, reference="pi_1"),
        )
    statements = [q["sql"][:60] for q in queries.captured_queries]
    assert len(statements) == 15, statements
    payment.refresh_from_db()
    assert (payment.status, payment.fee) == (PaymentStatus.SUCCEEDED, 250)
