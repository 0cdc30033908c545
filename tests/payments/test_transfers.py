import json

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from accounts.services import account_freeze
from audit.models import AuditLog, Event
from core.amounts import MAX_AMOUNT
from core.exceptions import ValidationError
from ledger.models import LedgerEntry, LedgerTransaction
from payments.models import Transfer, TransferStatus
from payments.representations import transfer_data
from payments.services import transfer_create
from tests.bad_inputs import BAD_METADATA, bad_text
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchant():
    return MerchantFactory.create()


def test_transfer_moves_money_and_records_everything(merchant):
    source = AccountFactory.create(merchant=merchant, balance=1_000)
    destination = AccountFactory.create(merchant=merchant)

    transfer = transfer_create(
        merchant=merchant, source=source, destination=destination, amount=250, description="rent"
    )

    source.refresh_from_db()
    destination.refresh_from_db()
    assert transfer.status == TransferStatus.SUCCEEDED
    assert transfer.public_id.startswith("tr_")
    assert (source.balance, destination.balance) == (750, 250)
    entries = LedgerEntry.objects.filter(transaction=transfer.ledger_transaction).order_by("pk")
    assert [(e.account_id, e.amount, e.balance_after) for e in entries] == [
        (source.pk, -250, 750),
        (destination.pk, 250, 250),
    ]
    assert AuditLog.objects.filter(
        action="transfer.succeeded", object_id=transfer.public_id
    ).exists()
    event = Event.objects.get(type="transfer.succeeded", object_id=transfer.public_id)
    assert event.merchant_id == merchant.pk
    assert event.data["object"]["amount"] == 250
    assert invariant_violations() == {}


def test_declined_transfer_is_stored_failed_and_moves_nothing(merchant):
    source = AccountFactory.create(merchant=merchant, balance=100)
    destination = AccountFactory.create(merchant=merchant)
    transactions_before = LedgerTransaction.objects.count()

    transfer = transfer_create(
        merchant=merchant, source=source, destination=destination, amount=101
    )

    source.refresh_from_db()
    assert transfer.status == TransferStatus.FAILED
    assert transfer.failure_code == "insufficient_funds"
    assert Transfer.objects.get(pk=transfer.pk).ledger_transaction is None
    assert source.balance == 100
    assert LedgerTransaction.objects.count() == transactions_before
    assert AuditLog.objects.filter(action="transfer.failed", object_id=transfer.public_id).exists()
    assert Event.objects.filter(type="transfer.failed", object_id=transfer.public_id).exists()
    assert invariant_violations() == {}


@pytest.mark.parametrize(("balance", "status"), [(1_000, "succeeded"), (10, "failed")])
def test_the_event_and_audit_row_show_the_transfer_as_stored(merchant, balance, status):
    # They are built before the transfer is inserted (one statement with it): its time
    # must be the stored one, not empty (or a rolled-back attempt's, for a decline).
    source = AccountFactory.create(merchant=merchant, balance=balance)
    destination = AccountFactory.create(merchant=merchant)

    transfer = transfer_create(merchant=merchant, source=source, destination=destination, amount=50)

    stored = Transfer.objects.get(pk=transfer.pk)
    assert stored.status == status
    event = Event.objects.get(type=f"transfer.{status}", object_id=transfer.public_id)
    audit = AuditLog.objects.get(action=f"transfer.{status}", object_id=transfer.public_id)
    expected = transfer_data(stored)
    assert expected["created"] is not None
    assert event.data["object"] == json.loads(json.dumps(expected, cls=DjangoJSONEncoder))
    assert audit.new_values["created"] == event.data["object"]["created"]


def test_transfer_spends_the_whole_balance_but_not_more(merchant):
    source = AccountFactory.create(merchant=merchant, balance=100)
    destination = AccountFactory.create(merchant=merchant)

    first = transfer_create(merchant=merchant, source=source, destination=destination, amount=100)
    second = transfer_create(merchant=merchant, source=source, destination=destination, amount=1)

    assert (first.status, second.status) == (TransferStatus.SUCCEEDED, TransferStatus.FAILED)


def test_held_funds_are_not_available_to_transfer(merchant):
    from ledger.holds import hold_create

    source = AccountFactory.create(merchant=merchant, balance=100)
    destination = AccountFactory.create(merchant=merchant)
    hold_create(account=source, amount=60)

    transfer = transfer_create(merchant=merchant, source=source, destination=destination, amount=41)

    assert transfer.failure_code == "insufficient_funds"


def test_overdraft_limit_lets_a_wallet_go_negative_down_to_it(merchant):
    source = AccountFactory.create(merchant=merchant, overdraft_limit=50)
    destination = AccountFactory.create(merchant=merchant)

    within = transfer_create(merchant=merchant, source=source, destination=destination, amount=50)
    beyond = transfer_create(merchant=merchant, source=source, destination=destination, amount=1)

    source.refresh_from_db()
    assert within.status == TransferStatus.SUCCEEDED
    assert beyond.failure_code == "insufficient_funds"
    assert source.balance == -50


@pytest.mark.parametrize("frozen", ["source", "destination"])
def test_frozen_account_can_neither_send_nor_receive(merchant, frozen):
    accounts = {
        "source": AccountFactory.create(merchant=merchant, balance=100),
        "destination": AccountFactory.create(merchant=merchant),
    }
    account_freeze(account=accounts[frozen], reason="suspected fraud")

    transfer = transfer_create(
        merchant=merchant, source=accounts["source"], destination=accounts["destination"], amount=10
    )

    assert transfer.status == TransferStatus.FAILED
    assert transfer.failure_code == "account_inactive"


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", True, None])
def test_amount_must_be_a_positive_integer(merchant, amount):
    source = AccountFactory.create(merchant=merchant, balance=100)
    destination = AccountFactory.create(merchant=merchant)

    with pytest.raises(ValidationError) as error:
        transfer_create(merchant=merchant, source=source, destination=destination, amount=amount)

    assert error.value.param == "amount"
    assert not Transfer.objects.exists()


def test_accounts_of_another_merchant_are_refused(merchant):
    source = AccountFactory.create(merchant=merchant, balance=100)
    foreign = AccountFactory.create(merchant=MerchantFactory.create())

    with pytest.raises(ValidationError) as error:
        transfer_create(merchant=merchant, source=source, destination=foreign, amount=10)

    assert error.value.code == "resource_missing"
    assert not Transfer.objects.exists()


def test_same_account_on_both_sides_is_refused(merchant):
    source = AccountFactory.create(merchant=merchant, balance=100)

    with pytest.raises(ValidationError):
        transfer_create(merchant=merchant, source=source, destination=source, amount=10)


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, 2**63, 10**30])
def test_amount_above_the_maximum_is_refused_before_the_database(merchant, amount):
    source = AccountFactory.create(merchant=merchant, balance=100)
    destination = AccountFactory.create(merchant=merchant)

    with pytest.raises(ValidationError) as error:
        transfer_create(merchant=merchant, source=source, destination=destination, amount=amount)

    assert error.value.param == "amount"
    assert not Transfer.objects.exists()


@pytest.mark.parametrize(
    ("param", "value"),
    [
        *[("description", value) for value in bad_text(500)],
        *[("metadata", value) for value in BAD_METADATA],
    ],
)
def test_transfer_refuses_malformed_text_and_metadata(merchant, param, value):
    source = AccountFactory.create(merchant=merchant, balance=100)
    destination = AccountFactory.create(merchant=merchant)
    audit_rows_before = AuditLog.objects.count()

    with pytest.raises(ValidationError) as error:
        transfer_create(
            merchant=merchant, source=source, destination=destination, amount=10, **{param: value}
        )

    assert error.value.param == param
    assert not Transfer.objects.exists()
    assert AuditLog.objects.count() == audit_rows_before
    source.refresh_from_db()
    assert source.balance == 100


def test_transfer_metadata_is_stored_as_given(merchant):
    source = AccountFactory.create(merchant=merchant, balance=100)
    destination = AccountFactory.create(merchant=merchant)

    transfer = transfer_create(
        merchant=merchant,
        source=source,
        destination=destination,
        amount=10,
        description="d" * 500,
        metadata={"order": "A-1"},
    )

    stored = Transfer.objects.get(pk=transfer.pk)
    assert (stored.description, stored.metadata) == ("d" * 500, {"order": "A-1"})
