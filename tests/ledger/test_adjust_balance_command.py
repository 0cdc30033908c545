from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditLog
from ledger.models import LedgerTransaction
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("adjust_balance", *args, stdout=out)
    return out.getvalue()


def test_credit_prints_the_ledger_transaction_id_and_is_audited():
    account = AccountFactory.create()

    output = run(
        "--account",
        account.public_id,
        "--amount",
        "1500",
        "--reason",
        "goodwill",
        "--actor",
        "ops@example.com",
    )

    ledger_transaction_id = output.strip().splitlines()[-1]
    assert LedgerTransaction.objects.filter(public_id=ledger_transaction_id).exists()
    account.refresh_from_db()
    assert account.balance == 1500
    audit = AuditLog.objects.get(action="account.adjusted", object_id=account.public_id)
    assert (audit.actor_type, audit.actor, audit.reason) == (
        "command",
        "ops@example.com",
        "goodwill",
    )


def test_debit_beyond_the_balance_is_refused_cleanly():
    account = AccountFactory.create(balance=100)

    with pytest.raises(CommandError, match="insufficient_funds"):
        run("--account", account.public_id, "--amount", "-101", "--reason", "clawback")

    account.refresh_from_db()
    assert account.balance == 100


@pytest.mark.parametrize(
    "args",
    [
        ["--account", "acct_missing", "--amount", "5", "--reason", "x"],
        ["--amount", "5", "--reason", "x"],
    ],
)
def test_bad_arguments_are_clear_errors(args):
    with pytest.raises(CommandError):
        run(*args)


def test_blank_reason_and_zero_amount_are_refused():
    account = AccountFactory.create()

    with pytest.raises(CommandError, match="reason"):
        run("--account", account.public_id, "--amount", "5", "--reason", "  ")
    with pytest.raises(CommandError, match="amount"):
        run("--account", account.public_id, "--amount", "0", "--reason", "oops")
