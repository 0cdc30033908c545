"""Entries are final once their ledger transaction has committed: PostgreSQL refuses a
balanced pair appended later, from another database transaction."""

import pytest
from django.db import IntegrityError, connection, transaction

from accounts.models import Account
from ledger.models import LedgerEntry, LedgerTransactionKind
from ledger.services import Leg, ledger_transaction_post
from tests.factories import AccountFactory, MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_entries_cannot_be_appended_to_a_committed_ledger_transaction() -> None:
    merchant = MerchantFactory.create()
    alice: Account = AccountFactory.create(merchant=merchant, balance=1_000)
    bob: Account = AccountFactory.create(merchant=merchant)
    with transaction.atomic():
        committed = ledger_transaction_post(
            kind=LedgerTransactionKind.TRANSFER,
            legs=[Leg(account=alice, amount=-100), Leg(account=bob, amount=100)],
        )
    entries = LedgerEntry.objects.count()

    with (
        pytest.raises(IntegrityError, match="created in another database transaction"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_ledgerentry"
            " (transaction_id, account_id, amount, currency, balance_after, created_at)"
            " VALUES (%s, %s, -500, 'USD', 0, now()), (%s, %s, 500, 'USD', 0, now())",
            [committed.pk, alice.pk, committed.pk, bob.pk],
        )

    assert LedgerEntry.objects.filter(transaction=committed).count() == 2
    assert LedgerEntry.objects.count() == entries
