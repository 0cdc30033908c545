"""Reversing a transfer: an operation of the transfer, so that the ledger and the transfer
never disagree."""

import io
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import Account, Merchant
from audit.models import AuditLog, Event
from core.exceptions import InsufficientFunds, InvalidState, ValidationError
from ledger.models import LedgerTransaction, LedgerTransactionKind
from ledger.services import ledger_transaction_reverse
from payments.models import Transfer, TransferStatus
from payments.services import transfer_create, transfer_reverse
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations


@pytest.fixture
def merchant() -> Merchant:
    return MerchantFactory.create()


def balances(*accounts: Account) -> list[int]:
    return [Account.objects.get(pk=account.pk).balance for account in accounts]


def sent(merchant: Merchant, amount: int = 400) -> tuple[Transfer, Account, Account]:
    source = AccountFactory.create(merchant=merchant, balance=1_000)
    destination = AccountFactory.create(merchant=merchant)
    return (
        transfer_create(merchant=merchant, source=source, destination=destination, amount=amount),
        source,
        destination,
    )


@pytest.mark.django_db
def test_a_reversed_transfer_gives_the_money_back_and_says_so(merchant: Merchant) -> None:
    transfer, source, destination = sent(merchant)

    reversed_ = transfer_reverse(transfer=transfer, reason="sent to the wrong wallet")

    assert reversed_.status == TransferStatus.REVERSED
    assert reversed_.reversal is not None
    assert reversed_.reversal.kind == LedgerTransactionKind.REVERSAL
    assert reversed_.reversal.reverses == transfer.ledger_transaction
    assert balances(source, destination) == [1_000, 0]
    event = Event.objects.get(type="transfer.reversed", object_id=transfer.public_id)
    assert event.data["object"]["status"] == "reversed"
    assert event.data["object"]["reversal"] == reversed_.reversal.public_id
    row = AuditLog.objects.get(action="transfer.reversed", object_id=transfer.public_id)
    assert (row.old_values["status"], row.new_values["status"]) == ("succeeded", "reversed")
    assert row.reason == "sent to the wrong wallet"
    assert invariant_violations() == {}


@pytest.mark.django_db
def test_a_transfer_is_reversed_once(merchant: Merchant) -> None:
    transfer, source, destination = sent(merchant)
    transfer_reverse(transfer=transfer, reason="mistake")

    with pytest.raises(InvalidState):
        transfer_reverse(transfer=transfer, reason="again")

    assert balances(source, destination) == [1_000, 0]


@pytest.mark.django_db
def test_the_generic_path_refuses_a_transfers_posting_and_its_reversal(merchant: Merchant) -> None:
    transfer, source, destination = sent(merchant)
    assert transfer.ledger_transaction is not None
    reversed_ = transfer_reverse(transfer=transfer, reason="mistake")
    assert reversed_.reversal is not None
    count = LedgerTransaction.objects.count()

    with pytest.raises(InvalidState):
        ledger_transaction_reverse(ledger_transaction=transfer.ledger_transaction)
    with pytest.raises(InvalidState) as refused:
        ledger_transaction_reverse(ledger_transaction=reversed_.reversal)

    assert refused.value.code == "reversal_not_reversible"
    assert LedgerTransaction.objects.count() == count
    # The transfer still reads reversed and the money moved exactly once each way.
    assert Transfer.objects.get(pk=transfer.pk).status == TransferStatus.REVERSED
    assert balances(source, destination) == [1_000, 0]


@pytest.mark.django_db
def test_a_failed_transfer_cannot_be_reversed(merchant: Merchant) -> None:
    source = AccountFactory.create(merchant=merchant, balance=10)
    destination = AccountFactory.create(merchant=merchant)
    failed = transfer_create(merchant=merchant, source=source, destination=destination, amount=99)

    with pytest.raises(InvalidState):
        transfer_reverse(transfer=failed, reason="nothing to undo")


@pytest.mark.django_db
def test_a_reversal_needs_the_money_still_there(merchant: Merchant) -> None:
    transfer, source, destination = sent(merchant)
    elsewhere = AccountFactory.create(merchant=merchant)
    transfer_create(merchant=merchant, source=destination, destination=elsewhere, amount=400)

    with pytest.raises(InsufficientFunds):
        transfer_reverse(transfer=transfer, reason="too late")

    assert Transfer.objects.get(pk=transfer.pk).status == TransferStatus.SUCCEEDED
    assert balances(source, destination, elsewhere) == [600, 0, 400]


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reversal_needs_a_reason(merchant: Merchant, reason: str) -> None:
    transfer, _, _ = sent(merchant)

    with pytest.raises(ValidationError):
        transfer_reverse(transfer=transfer, reason=reason)


@pytest.mark.django_db(transaction=True)
def test_two_reversals_at_once_move_the_money_back_once() -> None:
    merchant = MerchantFactory.create()
    transfer, source, destination = sent(merchant)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def reverse() -> None:
        try:
            barrier.wait()
            transfer_reverse(transfer=transfer, reason="at once")
            outcomes.append("reversed")
        except InvalidState:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=reverse) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["refused", "reversed"]
    assert balances(source, destination) == [1_000, 0]
    assert invariant_violations() == {}


@pytest.mark.django_db
def test_an_operator_reverses_a_transfer_from_the_command_line(merchant: Merchant) -> None:
    transfer, source, destination = sent(merchant)
    out = io.StringIO()

    call_command(
        "reverse_transfer",
        "--transfer",
        transfer.public_id,
        "--reason",
        "customer complaint #12",
        "--actor",
        "ops@example.com",
        stdout=out,
    )

    reversed_ = Transfer.objects.get(pk=transfer.pk)
    assert reversed_.status == TransferStatus.REVERSED
    assert reversed_.reversal is not None
    assert out.getvalue().splitlines()[-1] == reversed_.reversal.public_id
    row = AuditLog.objects.get(action="transfer.reversed")
    assert (row.actor_type, row.actor, row.reason) == (
        "command",
        "ops@example.com",
        "customer complaint #12",
    )
    assert balances(source, destination) == [1_000, 0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("transfer", "reason", "message"),
    [
        ("tr_0000000000000000000000", "why", "no transfer with id"),
        (None, "  ", "reason"),
    ],
)
def test_reverse_transfer_refuses_bad_input_clearly(
    merchant: Merchant, transfer: str | None, reason: str, message: str
) -> None:
    existing, _, _ = sent(merchant)

    with pytest.raises(CommandError, match=message):
        call_command(
            "reverse_transfer", "--transfer", transfer or existing.public_id, "--reason", reason
        )

    assert Transfer.objects.get(pk=existing.pk).status == TransferStatus.SUCCEEDED
