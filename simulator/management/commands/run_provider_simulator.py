"""python manage.py run_provider_simulator --port N: the provider simulator over HTTP."""

import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator import config
from simulator.server import SimulatorServer


def port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return port


def seconds(value: str) -> float:
    seconds = float(value)
    if not 0 <= seconds < float("inf"):
        raise ValueError(value)
    return seconds


class Command(BaseCommand):
    help = (
        "Serve the provider simulator (Stripe under /v1/, Adyen under /adyen/v71/, its admin "
        "under /_simulator/); see docs/providers.md."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=port, required=True, help="0 to 65535 (0: any free)")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--webhook-url",
            default=config.DEFAULT_WEBHOOK_URL,
            help="Moneta's base URL: webhooks go to URL/webhooks/providers/{stripe,adyen}/ "
            "('' sends none)",
        )
        parser.add_argument("--store", default=config.DEFAULT_STORE, help="the SQLite file")
        parser.add_argument("--async-seconds", type=seconds, default=2.0)
        parser.add_argument("--timeout-seconds", type=seconds, default=30.0)
        parser.add_argument("--stripe-api-key", default=config.DEFAULT_STRIPE_API_KEY)
        parser.add_argument("--stripe-webhook-secret", default=config.DEFAULT_STRIPE_WEBHOOK_SECRET)
        parser.add_argument("--adyen-api-key", default=config.DEFAULT_ADYEN_API_KEY)
        parser.add_argument("--adyen-hmac-key", default=config.DEFAULT_ADYEN_HMAC_KEY)
        parser.add_argument(
            "--adyen-merchant-account", default=config.DEFAULT_ADYEN_MERCHANT_ACCOUNT
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.getLogger("simulator").setLevel(logging.INFO)
        settings = config.SimulatorConfig(
            store_path=options["store"],
            stripe_api_key=options["stripe_api_key"],
            stripe_webhook_secret=options["stripe_webhook_secret"],
            adyen_api_key=options["adyen_api_key"],
            adyen_hmac_key=options["adyen_hmac_key"],
            adyen_merchant_account=options["adyen_merchant_account"],
            async_seconds=options["async_seconds"],
            timeout_seconds=options["timeout_seconds"],
            webhook_url=options["webhook_url"],
        )
        try:
            server = SimulatorServer(settings, options["host"], options["port"])
        except OSError as error:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {error.strerror or error}"
            ) from error
        # SIGTERM stops it as Ctrl-C does: the socket and the store closed on the way out.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        port = server.server_address[1]
        self.stdout.write(f"provider simulator listening on http://{options['host']}:{port}/")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
