"""Payouts end to end with a real worker on Redis (database 11) and the simulator over
HTTP: `ba_ok` paid and `ba_fail` failed with the balance and available exact at every
step, more than available, and a destination that is no bank token. A killed worker and an
unknown outcome: test_worker_held_faults.py."""

import pytest

from accounts.models import Account, HoldStatus
from audit.models import Event
from core.exceptions import InsufficientFunds, ValidationError
from payments.models import Payout, PayoutStatus
from payments.payouts import payout_create
from payments.providers.registry import PROVIDERS
from tests.factories import fund
from tests.payments.held_helpers import clearing_balance
from tests.payments.integration.conftest import MakeMerchant, SimulatorProcess, Worker
from tests.payments.integration.held import assert_ended_once, janitor_until, statuses_are

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(scope="module")
def broker_url() -> str:
    return "redis://127.0.0.1:6379/11"


def _funded(merchant_of: MakeMerchant, provider: str) -> Account:
    _, wallet = merchant_of(provider)
    fund(wallet, 10_000)
    return wallet


def _payout(wallet: Account, amount: int, destination: str) -> Payout:
    assert wallet.merchant is not None
    return payout_create(
        merchant=wallet.merchant,
        source=wallet,
        amount=amount,
        currency="usd",
        destination=destination,
    )


def _balances(wallet: Account) -> tuple[int, int, int]:
    wallet.refresh_from_db()
    return wallet.balance, wallet.available, wallet.held


@pytest.mark.parametrize("provider", PROVIDERS)
def test_payouts_to_ba_ok_are_paid_and_to_ba_fail_released(
    provider: str, merchant_of: MakeMerchant, simulator: SimulatorProcess, worker: Worker
) -> None:
    wallet = _funded(merchant_of, provider)
    clearing = clearing_balance()

    paid = _payout(wallet, 3_000, "ba_ok")
    failed = _payout(wallet, 4_000, "ba_fail")
    assert _balances(wallet) == (10_000, 3_000, 7_000)  # held at once

    janitor_until(statuses_are([paid], PayoutStatus.PAID), "the paid payout", worker)
    janitor_until(statuses_are([failed], PayoutStatus.FAILED), "the failed payout", worker)

    assert _balances(wallet) == (7_000, 7_000, 0)
    assert clearing_balance() - clearing == 3_000
    paid.refresh_from_db()
    failed.refresh_from_db()
    assert (paid.hold.status, failed.hold.status) == (HoldStatus.CAPTURED, HoldStatus.RELEASED)
    assert paid.ledger_transaction is not None and failed.ledger_transaction is None
    assert failed.failure_code
    events = Event.objects.filter(object_id__in=[paid.public_id, failed.public_id])
    assert sorted(events.values_list("type", flat=True)) == ["payout.failed", "payout.paid"]
    assert_ended_once(simulator, [paid, failed])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_payout_beyond_available_or_to_no_bank_token_sends_nothing(
    provider: str, merchant_of: MakeMerchant, worker: Worker
) -> None:
    wallet = _funded(merchant_of, provider)
    _payout(wallet, 9_000, "ba_ok")
    with pytest.raises(InsufficientFunds):
        _payout(wallet, 1_001, "ba_ok")
    with pytest.raises(ValidationError) as refused:
        _payout(wallet, 100, "GB29NWBK60161331926819")
    assert refused.value.code == "invalid_destination"
    assert Payout.objects.filter(source_account=wallet).count() == 1
    assert _balances(wallet) == (10_000, 1_000, 9_000)
    janitor_until(
        statuses_are(list(Payout.objects.filter(source_account=wallet)), PayoutStatus.PAID),
        "the payout",
        worker,
    )
    assert _balances(wallet) == (1_000, 1_000, 0)
