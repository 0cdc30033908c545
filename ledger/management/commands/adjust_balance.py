from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.models import Account
from audit.management import AuditedCommand
from ledger.services import adjustment_post


class Command(AuditedCommand):
    help = (
        "Post an operator's manual adjustment against the currency's settlement account: "
        "a credit when --amount is positive, a debit when negative. Prints the ledger "
        "transaction id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--account", required=True, help="the account's id (acct_…)")
        parser.add_argument(
            "--amount", required=True, type=int, help="signed amount in minor units"
        )
        parser.add_argument("--reason", required=True, help="why, for the audit trail")

    def handle(self, *args: Any, **options: Any) -> None:
        account = Account.objects.filter(public_id=options["account"]).first()
        if account is None:
            raise CommandError(f"no account with id {options['account']!r}")
        ledger_transaction = adjustment_post(
            account=account, amount=options["amount"], reason=options["reason"]
        )
        account.refresh_from_db()
        self.stdout.write(
            f"Adjusted {account.public_id} by {options['amount']} {account.currency}; "
            f"balance now {account.balance}."
        )
        self.stdout.write(ledger_transaction.public_id)
