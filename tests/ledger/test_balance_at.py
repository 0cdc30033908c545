from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import hold_capture, hold_create, hold_release
from ledger.selectors import account_balance
from payments.services import transfer_create
from tests.factories import AccountFactory, MerchantFactory, fund

pytestmark = pytest.mark.django_db


def test_balance_now_is_the_account_balance_less_holds():
    account = AccountFactory.create(balance=500)
    hold_create(account=account, amount=200)
    account.refresh_from_db()

    balance = account_balance(account=account)

    assert (balance.balance, balance.available, balance.currency) == (500, 300, "USD")


def test_balance_at_a_past_time_is_rebuilt_from_the_ledger():
    merchant = MerchantFactory.create()
    account = AccountFactory.create(merchant=merchant)
    before_anything = timezone.now()
    fund(account, 1_000)
    after_funding = timezone.now()
    other = AccountFactory.create(merchant=merchant)
    transfer_create(merchant=merchant, source=account, destination=other, amount=300)
    hold = hold_create(account=account, amount=100)
    while_held = timezone.now()
    hold_release(hold=hold)

    assert account_balance(account=account, as_of=before_anything).balance == 0
    at_funding = account_balance(account=account, as_of=after_funding)
    assert (at_funding.balance, at_funding.available) == (1_000, 1_000)
    during_hold = account_balance(account=account, as_of=while_held)
    assert (during_hold.balance, during_hold.available) == (700, 600)
    later = account_balance(account=account, as_of=timezone.now() + timedelta(days=1))
    assert (later.balance, later.available) == (700, 700)


def test_balance_at_the_moment_of_a_capture_counts_the_money_once():
    merchant = MerchantFactory.create()
    account = AccountFactory.create(merchant=merchant, balance=1_000)
    payee = AccountFactory.create(merchant=merchant)
    hold = hold_create(account=account, amount=300)

    captured = hold_capture(hold=hold, destination=payee, amount=200)

    capture_time = captured.closed_at
    assert captured.ledger_transaction is not None and capture_time is not None
    posted_at = {entry.created_at for entry in captured.ledger_transaction.entries.all()}
    assert posted_at == {capture_time}
    at_capture = account_balance(account=account, as_of=capture_time)
    assert (at_capture.balance, at_capture.available) == (800, 800)
    just_before = account_balance(account=account, as_of=capture_time - timedelta(microseconds=1))
    assert (just_before.balance, just_before.available) == (1_000, 700)
    payee_at_capture = account_balance(account=payee, as_of=capture_time)
    assert (payee_at_capture.balance, payee_at_capture.available) == (200, 200)
