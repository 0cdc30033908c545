from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger.holds import hold_capture, hold_create, hold_release
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


def test_balance_at_a_time_reads_entries_and_holds_in_one_statement():
    # One statement is one snapshot: a capture committing meanwhile (the money leaves the
    # hold and enters the entries at once) cannot be seen half done.
    account = AccountFactory.create(balance=500)
    hold_create(account=account, amount=100)

    with CaptureQueriesContext(connection) as queries:
        balance = account_balance(account=account, as_of=timezone.now())

    assert (balance.balance, balance.available) == (500, 400)
    assert len(queries) == 1


def test_hold_times_come_from_the_database_clock(monkeypatch: pytest.MonkeyPatch):
    # An application server whose clock is an hour slow: the hold still opens and closes
    # at the database's time, the time its account's entries carry.
    account = AccountFactory.create(balance=500)
    slow = timezone.now() - timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: slow)

    hold = hold_release(hold=hold_create(account=account, amount=100))

    assert hold.created_at > slow + timedelta(minutes=59)
    assert hold.closed_at is not None and hold.closed_at >= hold.created_at
