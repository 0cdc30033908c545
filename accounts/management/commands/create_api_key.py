from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from accounts.api_keys import api_key_create
from accounts.models import Merchant
from accounts.services import merchant_create
from audit.management import AuditedCommand


class Command(AuditedCommand):
    help = (
        "Create an API key for a merchant (creating the merchant if needed). The key is "
        "printed once, as the last line; only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--merchant", required=True, help="the merchant's name")
        parser.add_argument("--read-only", action="store_true", help="the key may only read")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            merchant = Merchant.objects.filter(name=options["merchant"].strip()).first()
            if merchant is None:
                merchant = merchant_create(name=options["merchant"])
                self.stdout.write(f"Created merchant {merchant.name} ({merchant.public_id}).")
            api_key, secret = api_key_create(
                merchant=merchant, name=options["name"], read_only=options["read_only"]
            )
        scope = "read-only" if api_key.read_only else "read and write"
        self.stdout.write(
            f"API key {api_key.public_id} ({api_key.prefix}…) for {merchant.name} ({scope}):"
        )
        self.stdout.write(secret)
