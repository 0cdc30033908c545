"""`manage.py reverse_transfer --transfer tr_… --reason TEXT`: an operator's reversal."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from audit.management import AuditedCommand
from payments.models import Transfer
from payments.services import transfer_reverse


class Command(AuditedCommand):
    help = (
        "Send a succeeded transfer's money back: the transfer becomes 'reversed', with its "
        "event and audit row (the reason, and --actor). The destination must still have "
        "the money available. Prints the reversal's ledger transaction id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--transfer", required=True, help="the transfer's id (tr_…)")
        parser.add_argument("--reason", required=True, help="why, for the audit trail")

    def handle(self, *args: Any, **options: Any) -> None:
        transfer = Transfer.objects.filter(public_id=options["transfer"].strip()).first()
        if transfer is None:
            raise CommandError(f"no transfer with id {options['transfer']!r}")
        reversed_ = transfer_reverse(transfer=transfer, reason=options["reason"])
        assert reversed_.reversal is not None  # noqa: S101 - a check constraint holds it
        self.stdout.write(f"Reversed {reversed_.public_id}.")
        self.stdout.write(reversed_.reversal.public_id)
