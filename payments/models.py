from django.db import models
from django.db.models import Q
from djmoney.models.fields import CurrencyField

from core.ids import new_transfer_id


class TransferStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


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
    # Equal to amount and currency unless the transfer crossed currencies at `fx_rate`.
    destination_amount = models.BigIntegerField()
    destination_currency = CurrencyField(default=None)
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
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(
                condition=Q(status=TransferStatus.SUCCEEDED, ledger_transaction__isnull=False)
                | Q(status=TransferStatus.FAILED, ledger_transaction__isnull=True)
                & ~Q(failure_code=""),
                name="transfer_outcome_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id
