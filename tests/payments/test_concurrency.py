"""Parallel transfers on real PostgreSQL: no lock error reaches a caller, money is conserved."""

import random
import sys
import threading
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Sum

from accounts.models import Account
from ledger.models import LedgerTransaction, LedgerTransactionKind
from payments.models import Transfer, TransferStatus
from payments.services import transfer_create
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WORKERS = 8
TRANSFERS_PER_WORKER = 250  # 2,000 in all
ACCOUNTS = 20
OPENING_BALANCE = 1_000


@pytest.fixture(autouse=True)
def quick_thread_switches():
    """A thread holding a row lock should not wait the default 5 ms for the GIL while the
    others spin: that would measure Python's scheduler, not our locking."""
    default = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(default)


def run_in_parallel(make_transfer) -> list[BaseException]:
    """Run WORKERS threads, each with its own database connection, started together."""
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(TRANSFERS_PER_WORKER):
                make_transfer(rng)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def assert_money_conserved(accounts: list[Account], total: int) -> None:
    transfers = Transfer.objects.filter(merchant=accounts[0].merchant)
    assert transfers.count() == WORKERS * TRANSFERS_PER_WORKER
    succeeded = transfers.filter(status=TransferStatus.SUCCEEDED)
    assert (
        succeeded.count()
        == LedgerTransaction.objects.filter(kind=LedgerTransactionKind.TRANSFER).count()
    )
    assert (
        Account.objects.filter(pk__in=[a.pk for a in accounts]).aggregate(s=Sum("balance"))["s"]
        == total
    )

    # Every account ends exactly where its succeeded transfers put it.
    expected = Counter({account.pk: OPENING_BALANCE for account in accounts})
    for source_id, destination_id, amount in succeeded.values_list(
        "source_account_id", "destination_account_id", "amount"
    ):
        expected[source_id] -= amount
        expected[destination_id] += amount
    actual = dict(Account.objects.filter(pk__in=expected).values_list("pk", "balance"))
    assert actual == dict(expected)
    assert invariant_violations() == {}


def test_random_transfers_among_twenty_accounts():
    merchant = MerchantFactory.create()
    accounts = [
        AccountFactory.create(merchant=merchant, balance=OPENING_BALANCE) for _ in range(ACCOUNTS)
    ]

    def make_transfer(rng: random.Random) -> None:
        source, destination = rng.sample(accounts, 2)
        transfer_create(
            merchant=merchant, source=source, destination=destination, amount=rng.randint(1, 300)
        )

    errors = run_in_parallel(make_transfer)

    assert errors == []
    assert_money_conserved(accounts, ACCOUNTS * OPENING_BALANCE)
    # The amounts are large enough that some transfers are declined under contention.
    assert Transfer.objects.filter(status=TransferStatus.FAILED).exists()


def test_every_transfer_crediting_one_hot_account():
    merchant = MerchantFactory.create()
    accounts = [
        AccountFactory.create(merchant=merchant, balance=OPENING_BALANCE) for _ in range(ACCOUNTS)
    ]
    hot, others = accounts[0], accounts[1:]

    def make_transfer(rng: random.Random) -> None:
        transfer_create(
            merchant=merchant, source=rng.choice(others), destination=hot, amount=rng.randint(1, 20)
        )

    errors = run_in_parallel(make_transfer)

    assert errors == []
    assert_money_conserved(accounts, ACCOUNTS * OPENING_BALANCE)


def test_every_transfer_debiting_one_hot_account_never_overdraws_it():
    merchant = MerchantFactory.create()
    accounts = [
        AccountFactory.create(merchant=merchant, balance=OPENING_BALANCE) for _ in range(ACCOUNTS)
    ]
    hot, others = accounts[0], accounts[1:]

    def make_transfer(rng: random.Random) -> None:
        transfer_create(
            merchant=merchant, source=hot, destination=rng.choice(others), amount=rng.randint(1, 5)
        )

    errors = run_in_parallel(make_transfer)

    assert errors == []
    hot.refresh_from_db()
    assert 0 <= hot.balance < 5
    assert_money_conserved(accounts, ACCOUNTS * OPENING_BALANCE)
