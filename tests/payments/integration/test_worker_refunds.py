"""Refunds end to end with a real worker on Redis (database 10) and the simulator over
HTTP: full, partial and several; concurrent requests that together exceed the capture;
no funds; a payment not succeeded. Each ends with one refund per admitted request at the
provider, its hold closed, and the ledger reconciled. A killed worker and an unknown
outcome: test_worker_held_faults.py."""

import threading

import pytest
from django.db import connection

from accounts.models import Account
from audit.models import Event
from core.exceptions import DomainError, InsufficientFunds, InvalidState
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from payments.providers.registry import PROVIDERS
from payments.refunds import refund_create
from payments.services import transfer_create
from tests.factories import AccountFactory
from tests.payments.held_helpers import clearing_balance
from tests.payments.integration.conftest import (
    MakeMerchant,
    SimulatorProcess,
    Worker,
    pay,
    wait_for_status,
)
from tests.payments.integration.held import (
    assert_ended_once,
    assert_refunded_at_provider,
    janitor_until,
    statuses_are,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AMOUNT = 2_500  # conftest.pay's


@pytest.fixture(scope="module")
def broker_url() -> str:
    return "redis://127.0.0.1:6379/10"


def _paid(merchant_of: MakeMerchant, provider: str, worker: Worker) -> tuple[Payment, Account]:
    merchant, wallet = merchant_of(provider)
    payment = pay(merchant, wallet)
    wait_for_status([payment], PaymentStatus.SUCCEEDED, worker)
    return payment, wallet


def _refund(payment: Payment, amount: int | None = None) -> Refund:
    return refund_create(merchant=payment.merchant, payment=payment, amount=amount)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_partial_and_several_refunds_then_the_rest(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    payment, wallet = _paid(merchant_of, provider, worker)
    clearing = clearing_balance()
    refunds = [_refund(payment, 1_000), _refund(payment, 500), _refund(payment)]
    assert [r.amount for r in refunds] == [1_000, 500, 1_000]  # the last: what was left

    janitor_until(statuses_are(refunds, RefundStatus.SUCCEEDED), "refunds to succeed", worker)

    payment.refresh_from_db()
    wallet.refresh_from_db()
    assert payment.amount_refunded == AMOUNT
    assert (wallet.balance, wallet.available, wallet.held) == (0, 0, 0)
    assert clearing_balance() - clearing == AMOUNT
    assert Event.objects.filter(
        object_id__in=[r.public_id for r in refunds], type="refund.succeeded"
    ).count() == len(refunds)
    assert_ended_once(simulator, refunds)
    assert_refunded_at_provider(payment, AMOUNT)


def _concurrently(payment: Payment, amount: int, requests: int) -> list[Refund | DomainError]:
    """`requests` refunds of `amount` asked at the same moment, each on its own
    connection; what each got."""
    barrier = threading.Barrier(requests)
    outcomes: list[Refund | DomainError] = []

    def ask() -> None:
        try:
            barrier.wait()
            outcomes.append(_refund(payment, amount))
        except DomainError as error:
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.parametrize(
    ("provider", "requests", "amount", "admissible"),
    [
        ("stripe", 2, 1_500, 1),
        ("adyen", 2, 1_500, 1),
        ("stripe", 8, 1_000, 2),
        ("adyen", 8, 1_000, 2),
    ],
)
def test_concurrent_refunds_beyond_the_capture_admit_exactly_the_admissible(
    provider: str,
    requests: int,
    amount: int,
    admissible: int,
    merchant_of: MakeMerchant,
    simulator: SimulatorProcess,
    worker: Worker,
) -> None:
    payment, wallet = _paid(merchant_of, provider, worker)

    outcomes = _concurrently(payment, amount, requests)

    admitted = [o for o in outcomes if isinstance(o, Refund)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(admitted) == admissible, outcomes
    assert {(e.code, e.param) for e in refused} == {("amount_too_large", "amount")}
    assert len(refused) == requests - admissible
    janitor_until(statuses_are(admitted, RefundStatus.SUCCEEDED), "refunds to succeed", worker)
    payment.refresh_from_db()
    wallet.refresh_from_db()
    assert payment.amount_refunded == admissible * amount
    assert wallet.balance == AMOUNT - admissible * amount == wallet.available
    assert Refund.objects.filter(payment=payment).count() == admissible
    assert_ended_once(simulator, admitted)
    assert_refunded_at_provider(payment, admissible * amount)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_funds_on_the_destination_account_sends_nothing(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    payment, wallet = _paid(merchant_of, provider, worker)
    other = AccountFactory.create(merchant=payment.merchant, currency="USD")
    transfer_create(merchant=payment.merchant, source=wallet, destination=other, amount=AMOUNT)

    with pytest.raises(InsufficientFunds):
        _refund(payment)

    payment.refresh_from_db()
    assert (payment.amount_refunded, Refund.objects.filter(payment=payment).count()) == (0, 0)
    assert_refunded_at_provider(payment, 0)  # nothing was sent


def test_a_payment_that_is_not_succeeded_is_not_refunded(
    merchant_of: MakeMerchant, worker: Worker
) -> None:
    merchant, wallet = merchant_of("stripe")
    declined = pay(merchant, wallet, "pm_card_declined")
    wait_for_status([declined], PaymentStatus.FAILED, worker)
    with pytest.raises(InvalidState, match="is failed; only a succeeded payment"):
        _refund(declined)
    assert not Refund.objects.filter(payment=declined).exists()
