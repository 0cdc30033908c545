from django.db import models
from django.db.models import F, Q
from djmoney.models.fields import CurrencyField

from core.ids import new_fx_quote_id, new_transfer_id


class FxRate(models.Model):
    """A reference rate set by finance staff: `rate` major units of the destination
    currency for one of the source. Never changed: a new rate is a new row, and the newest
    of a pair is the one quotes take."""

    source_currency = CurrencyField(default=None)
    destination_currency = CurrencyField(default=None)
    rate = models.DecimalField(max_digits=24, decimal_places=12)
    set_by = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "FX reference rate"
        indexes = [
            models.Index(
                fields=["source_currency", "destination_currency", "-id"], name="fx_rate_newest"
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0), name="fx_rate_positive"),
            models.CheckConstraint(
                condition=~Q(source_currency=F("destination_currency")),
                name="fx_rate_between_two_currencies",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_currency}/{self.destination_currency} {self.rate}"


class FxQuote(models.Model):
    """A rate offered to one merchant for one currency pair until `expires_at`: the
    reference rate less the merchant's spread. Cross-currency transfers convert at a quote,
    never at a rate the caller names."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_fx_quote_id, editable=False
    )
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="fx_quotes"
    )
    source_currency = CurrencyField(default=None)
    destination_currency = CurrencyField(default=None)
    reference_rate = models.ForeignKey(FxRate, on_delete=models.PROTECT, related_name="quotes")
    spread_bps = models.PositiveIntegerField()
    rate = models.DecimalField(max_digits=24, decimal_places=12)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "FX quote"
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0), name="fx_quote_rate_positive"),
        ]

    def __str__(self) -> str:
        return self.public_id


class TransferStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REVERSED = "reversed", "Reversed"


class Transfer(models.Model):
    """Money moved between two accounts of one merchant. Written once, in its final state:
    `succeeded` with its ledger transaction, or `failed` with a `failure_code` and no money
    moved."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_transfer_id, editable=False
    )
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="transfers"
    )
    source_account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="outgoing_transfers"
    )
    destination_account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="incoming_transfers"
    )
    amount = models.BigIntegerField()
    currency = CurrencyField(default=None)
    # Equal to amount and currency unless the transfer crossed currencies at `fx_quote`'s
    # rate, copied into `fx_rate`.
    destination_amount = models.BigIntegerField()
    destination_currency = CurrencyField(default=None)
    fx_quote = models.ForeignKey(
        FxQuote, on_delete=models.PROTECT, null=True, blank=True, related_name="transfers"
    )
    fx_rate = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    status = models.CharField(max_length=16, choices=TransferStatus.choices, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    description = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    ledger_transaction = models.OneToOneField(
        "ledger.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="transfer",
    )
    # The reversal that sent the money back, when the transfer was reversed.
    reversal = models.OneToOneField(
        "ledger.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversed_transfer",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(
                condition=Q(
                    status=TransferStatus.SUCCEEDED,
                    ledger_transaction__isnull=False,
                    reversal__isnull=True,
                )
                | Q(
                    status=TransferStatus.REVERSED,
                    ledger_transaction__isnull=False,
                    reversal__isnull=False,
                )
                | Q(
                    status=TransferStatus.FAILED,
                    ledger_transaction__isnull=True,
                    reversal__isnull=True,
                )
                & ~Q(failure_code=""),
                name="transfer_outcome_consistent",
            ),
            models.CheckConstraint(
                condition=Q(fx_quote__isnull=True) | Q(fx_rate__isnull=False),
                name="transfer_fx_rate_from_its_quote",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id
