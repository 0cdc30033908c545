"""`manage.py provider_circuit --provider stripe [--open | --close]`: see or force a
provider's circuit breaker (docs/providers.md, "Circuit breaker")."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from payments.providers.circuit import CircuitStatus, circuit_force, circuit_status
from payments.providers.registry import PROVIDERS


class Command(BaseCommand):
    help = (
        "Show a provider's circuit breaker (state, failed calls in a row, when an open "
        "circuit lets a trial call through), or force it: --open stops calls to the provider "
        "for PROVIDER_CIRCUIT_RESET_SECONDS (new payments fail over to the other provider); "
        "--close lets them through again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", required=True, choices=PROVIDERS)
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--open", action="store_true", help="open the circuit")
        action.add_argument("--close", action="store_true", help="close the circuit")
        action.add_argument("--status", action="store_true", help="show it (the default)")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = options["provider"]
        if options["open"]:
            status = circuit_force(provider, state="open")
        elif options["close"]:
            status = circuit_force(provider, state="closed")
        else:
            status = circuit_status(provider)
        self.stdout.write(_describe(status))
        if settings.PROVIDER_CIRCUIT_STORAGE == "memory":
            self.stderr.write(
                "PROVIDER_CIRCUIT_STORAGE is memory: this is this process's breaker only; "
                "the workers' are their own."
            )


def _describe(status: CircuitStatus) -> str:
    text = f"{status.provider}: {status.state}, {status.failures} failed calls in a row"
    if status.open_until is not None:
        text += f", a trial call allowed from {status.open_until.isoformat()}"
    return text
