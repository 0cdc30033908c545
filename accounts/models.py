from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from djmoney.models.fields import CurrencyField
from djmoney.money import Money
from simple_history.models import HistoricalRecords

from core.currencies import to_money
from core.history import history_user
from core.ids import (
    new_account_id,
    new_api_key_id,
    new_customer_id,
    new_hold_id,
    new_merchant_id,
)


class PaymentProvider(models.TextChoices):
    """The providers a payment can go through (payments.providers.registry has one adapter
    for each)."""

    STRIPE = "stripe", "Stripe"
    ADYEN = "adyen", "Adyen"


class Merchant(models.Model):
    """A tenant: the business that calls the API. Everything it sees belongs to it."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_merchant_id, editable=False
    )
    name = models.CharField(max_length=200, unique=True)
    # What the merchant's FX quotes take off the platform's reference rate (100 = 1 %).
    fx_spread_bps = models.PositiveIntegerField(
        "FX spread (basis points)",
        default=0,
        help_text="Taken off the reference rate in every FX quote: 100 basis points = 1 %.",
    )
    # Where the merchant's payments go first; blank: settings.PAYMENT_DEFAULT_PROVIDER.
    # When its circuit is open, routing fails over to another provider.
    default_provider = models.CharField(
        max_length=16,
        choices=PaymentProvider.choices,
        blank=True,
        help_text="The provider new payments go to first; blank for the platform's default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(fx_spread_bps__lt=10_000), name="merchant_fx_spread_below_100_percent"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    """An end customer of a merchant."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_customer_id, editable=False
    )
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="customers")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    external_reference = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name or self.email or self.public_id


class AccountKind(models.TextChoices):
    WALLET = "wallet", "Wallet"
    SYSTEM = "system", "System"


class SystemPurpose(models.TextChoices):
    """The platform's own accounts, one per currency each; they mirror the outside world."""

    PROVIDER_CLEARING = "provider_clearing", "Provider clearing"
    PLATFORM_FEES = "platform_fees", "Platform fees"
    SETTLEMENT = "settlement", "Settlement (bank)"
    FX = "fx", "Foreign exchange"


class AccountStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FROZEN = "frozen", "Frozen"
    CLOSED = "closed", "Closed"


class Account(models.Model):
    """Holds money in one currency. `balance` and `held` are in minor units and change only
    through `ledger.services` and the hold services, under a row lock."""

    public_id = models.CharField(max_length=32, unique=True, default=new_account_id, editable=False)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="accounts", null=True, blank=True
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="accounts", null=True, blank=True
    )
    kind = models.CharField(max_length=16, choices=AccountKind.choices, default=AccountKind.WALLET)
    system_purpose = models.CharField(max_length=32, choices=SystemPurpose.choices, blank=True)
    currency = CurrencyField(default=None)
    status = models.CharField(
        max_length=16, choices=AccountStatus.choices, default=AccountStatus.ACTIVE, db_index=True
    )
    balance = models.BigIntegerField(default=0, editable=False)
    held = models.BigIntegerField(default=0, editable=False)
    overdraft_limit = models.BigIntegerField(default=0)
    description = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    # Balances are history in the ledger; simple-history tracks the attributes people edit.
    history = HistoricalRecords(excluded_fields=["balance", "held"], get_user=history_user)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="account_held_not_negative"),
            models.CheckConstraint(
                condition=Q(overdraft_limit__gte=0), name="account_overdraft_not_negative"
            ),
            # I4 inside the database: a wallet's available balance never passes its overdraft.
            models.CheckConstraint(
                condition=~Q(kind=AccountKind.WALLET)
                | Q(balance__gte=F("held") - F("overdraft_limit")),
                name="wallet_available_within_overdraft",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind=AccountKind.WALLET) & Q(merchant__isnull=False) & Q(system_purpose="")
                )
                | (Q(kind=AccountKind.SYSTEM) & Q(merchant__isnull=True) & ~Q(system_purpose="")),
                name="account_owner_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["currency", "system_purpose"],
                condition=Q(kind=AccountKind.SYSTEM),
                name="one_system_account_per_currency_and_purpose",
            ),
            # What ledger entries' (account_id, currency) foreign key points at, so that an
            # entry can only be in its account's currency (ledger/0003).
            models.UniqueConstraint(fields=["id", "currency"], name="account_id_currency"),
        ]

    def __str__(self) -> str:
        if self.kind == AccountKind.SYSTEM:
            return f"{self.get_system_purpose_display()} {self.currency}"
        return f"{self.public_id} ({self.currency})"

    @property
    def available(self) -> int:
        return self.balance - self.held

    @property
    def balance_money(self) -> Money:
        return Money(to_money(self.balance, self.currency).amount, self.currency)

    @property
    def available_money(self) -> Money:
        return Money(to_money(self.available, self.currency).amount, self.currency)


class HoldStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    CAPTURED = "captured", "Captured"
    EXPIRED = "expired", "Expired"


class Hold(models.Model):
    """Funds reserved on an account: they count against `available` until the hold is
    released, captured or expired. The ledger's pending transfer: every write to it is in
    ledger/holds.py (ADR 0012)."""

    public_id = models.CharField(max_length=32, unique=True, default=new_hold_id, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    amount = models.BigIntegerField()
    captured_amount = models.BigIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=HoldStatus.choices, default=HoldStatus.ACTIVE, db_index=True
    )
    description = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Both from the database's clock, taken under the account's lock (core.db.database_now),
    # like the entries' times: "balance at time T" compares them.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True)
    ledger_transaction = models.OneToOneField(
        "ledger.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(
                condition=Q(captured_amount__gte=0) & Q(captured_amount__lte=F("amount")),
                name="hold_captured_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class ApiKey(models.Model):
    """A merchant's secret for the API. Only a keyed hash of the secret is stored; the
    secret itself is shown once, when the key is created."""

    # The key's identity in the audit trail and the logs; the prefix is for display only
    # (4 random characters: not unique).
    public_id = models.CharField(max_length=32, unique=True, default=new_api_key_id, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(default=False)
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords(excluded_fields=["last_used_at"], get_user=history_user)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.public_id} ({self.prefix}…)"
