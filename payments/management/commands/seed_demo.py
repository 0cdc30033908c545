"""`manage.py seed_demo`: demo data made through the services, and an admin login."""

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.api_keys import api_key_create
from accounts.models import Merchant
from accounts.services import account_create, customer_create, merchant_create
from audit.management import AuditedCommand
from ledger.holds import hold_create
from ledger.services import adjustment_post
from payments.fees import pricing_set
from payments.fx import fx_quote_create, fx_rate_set
from payments.models import CaptureMethod, TransferStatus
from payments.payments import payment_create
from payments.services import transfer_create

DEMO_MERCHANT = "Demo Shop"
ADMIN_USERNAME = "admin"
ADMIN_EMAIL = "admin@example.com"
DEFAULT_ADMIN_URL = "http://127.0.0.1:8000/admin/"


class Command(AuditedCommand):
    help = (
        f"Create the demo merchant {DEMO_MERCHANT!r} with customers, accounts in USD, EUR "
        "and JPY, transfers and a hold (once), and (re)set the password of the "
        f"superuser {ADMIN_USERNAME!r}, printing the admin login and a new API key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--admin-url", default=DEFAULT_ADMIN_URL, help="the admin address to print"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if Merchant.objects.filter(name=DEMO_MERCHANT).exists():
            self.stdout.write(f"Demo data already present (merchant {DEMO_MERCHANT!r}).")
        else:
            # All or nothing: a run that fails halfway leaves no half-seeded merchant behind.
            with transaction.atomic():
                self._seed()
        password = self._reset_admin()
        shop = Merchant.objects.get(name=DEMO_MERCHANT)
        _, api_secret = api_key_create(merchant=shop, name="demo")
        api_root = options["admin_url"].removesuffix("admin/") + "api/v1/"
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Log in to the Moneta admin:"))
        self.stdout.write(f"  URL:      {options['admin_url']}")
        self.stdout.write(f"  Username: {ADMIN_USERNAME}")
        self.stdout.write(f"  Password: {password}")
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Call the API as {DEMO_MERCHANT} ({api_root}docs/):"))
        self.stdout.write(f"  curl -H 'Authorization: Bearer {api_secret}' {api_root}accounts")

    def _seed(self) -> None:
        shop = merchant_create(name=DEMO_MERCHANT)
        ada = customer_create(
            merchant=shop, name="Ada Lovelace", email="ada@example.com", external_reference="C-1"
        )
        grace = customer_create(
            merchant=shop, name="Grace Hopper", email="grace@example.com", external_reference="C-2"
        )
        alan = customer_create(
            merchant=shop, name="Alan Turing", email="alan@example.com", external_reference="C-3"
        )

        shop_usd = account_create(merchant=shop, currency="USD", description="Operating USD")
        shop_eur = account_create(merchant=shop, currency="EUR", description="Operating EUR")
        shop_jpy = account_create(merchant=shop, currency="JPY", description="Operating JPY")
        ada_usd = account_create(
            merchant=shop, currency="USD", customer=ada, description="Ada's wallet"
        )
        grace_eur = account_create(
            merchant=shop, currency="EUR", customer=grace, description="Grace's wallet"
        )
        alan_jpy = account_create(
            merchant=shop, currency="JPY", customer=alan, description="Alan's wallet"
        )

        # The reference rates finance would set (set_fx_rate), both directions.
        fx_rate_set(source_currency="USD", destination_currency="EUR", rate=Decimal("0.92"))
        fx_rate_set(source_currency="EUR", destination_currency="USD", rate=Decimal("1.08"))
        fx_rate_set(source_currency="USD", destination_currency="JPY", rate=Decimal("150"))
        fx_rate_set(source_currency="JPY", destination_currency="USD", rate=Decimal("0.0066"))

        # Amounts are in minor units: cents for USD and EUR, yen for JPY.
        adjustment_post(account=shop_usd, amount=1_000_000, reason="Demo: opening float")
        adjustment_post(account=shop_eur, amount=500_000, reason="Demo: opening float")
        adjustment_post(account=shop_jpy, amount=1_000_000, reason="Demo: opening float")
        adjustment_post(account=ada_usd, amount=25_000, reason="Demo: bank top-up")

        transfers = [
            transfer_create(
                merchant=shop,
                source=shop_usd,
                destination=ada_usd,
                amount=5_000,
                description="Cashback",
            ),
            transfer_create(
                merchant=shop,
                source=ada_usd,
                destination=shop_usd,
                amount=12_500,
                description="Order #1001",
            ),
            transfer_create(
                merchant=shop,
                source=shop_jpy,
                destination=alan_jpy,
                amount=3_000,
                description="Refund of order #1000",
            ),
            # Grace's wallet is empty: recorded as failed with insufficient_funds.
            transfer_create(
                merchant=shop,
                source=grace_eur,
                destination=shop_eur,
                amount=4_200,
                description="Order #1003",
            ),
            # 100.00 USD at a quote of 0.92 arrives as 92.00 EUR, through the FX system
            # accounts.
            transfer_create(
                merchant=shop,
                source=shop_usd,
                destination=grace_eur,
                amount=10_000,
                description="Goodwill credit in EUR",
                fx_quote=fx_quote_create(
                    merchant=shop, source_currency="USD", destination_currency="EUR"
                ),
            ),
        ]
        hold_create(
            account=ada_usd,
            amount=2_000,
            description="Card authorization for order #1002",
            expires_at=timezone.now() + timedelta(days=7),
        )

        # Card payments through the in-process provider, settled by their tasks when the
        # seeding commits: one captured (2.9 % + 0.30 of it to the platform), one
        # authorized and waiting for its capture, one declined.
        pricing_set(merchant=shop, currency="USD", percent_bps=290, fixed_fee=30)
        payments = [
            payment_create(
                merchant=shop,
                destination=shop_usd,
                customer=ada,
                amount=4_999,
                currency="USD",
                payment_method="pm_card_visa",
                description="Order #1004",
            ),
            payment_create(
                merchant=shop,
                destination=shop_usd,
                customer=grace,
                amount=12_000,
                currency="USD",
                payment_method="pm_card_visa",
                capture_method=CaptureMethod.MANUAL,
                description="Order #1005, to capture when shipped",
            ),
            payment_create(
                merchant=shop,
                destination=shop_usd,
                customer=alan,
                amount=2_500,
                currency="USD",
                payment_method="pm_card_declined",
                description="Order #1006",
            ),
        ]

        failed = sum(t.status == TransferStatus.FAILED for t in transfers)
        self.stdout.write(
            f"Created merchant {shop.name!r} ({shop.public_id}): 3 customers, 6 accounts "
            f"(USD, EUR, JPY), {len(transfers)} transfers ({failed} failed), 1 active hold, "
            f"{len(payments)} card payments (captured, authorized, declined)."
        )

    def _reset_admin(self) -> str:
        """Create the superuser if needed and give it a fresh random password."""
        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if user is None:
            user_model.objects.create_superuser(
                username=ADMIN_USERNAME, email=ADMIN_EMAIL, password=password
            )
        else:
            user.is_active = user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        return password
