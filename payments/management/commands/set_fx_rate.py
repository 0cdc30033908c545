"""`manage.py set_fx_rate --pair USD/EUR --rate 0.92`: set a reference rate (SPEC §4.4)."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from audit.management import AuditedCommand
from payments.fx import fx_rate_set, rate_text


class Command(AuditedCommand):
    help = (
        "Set the platform's reference rate of a currency pair: --rate major units of the "
        "second currency for one of the first (USD/EUR 0.92: 1 USD buys 0.92 EUR). Quotes "
        "take the newest rate, less the merchant's spread. Each direction is its own rate. "
        "Audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--pair", required=True, help="SOURCE/DESTINATION, e.g. USD/EUR")
        parser.add_argument("--rate", required=True, help="a positive decimal, e.g. 0.92")

    def handle(self, *args: Any, **options: Any) -> None:
        source, slash, destination = options["pair"].partition("/")
        if not slash or not source.strip() or not destination.strip():
            raise CommandError(
                f"--pair must be SOURCE/DESTINATION (e.g. USD/EUR), not {options['pair']!r}"
            )
        fx_rate = fx_rate_set(
            source_currency=source, destination_currency=destination, rate=options["rate"]
        )
        self.stdout.write(
            f"{fx_rate.source_currency}/{fx_rate.destination_currency} is now "
            f"{rate_text(fx_rate.rate)} "
            f"(set at {fx_rate.created_at.isoformat()})."
        )
