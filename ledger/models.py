from django.db import models
from django.db.models import Q
from djmoney.models.fields import CurrencyField

from core.ids import new_ledger_transaction_id


class LedgerTransactionKind(models.TextChoices):
    TRANSFER = "transfer", "Transfer"
    FX_TRANSFER = "fx_transfer", "Cross-currency transfer"
    HOLD_CAPTURE = "hold_capture", "Hold capture"
    PAYMENT = "payment", "Payment capture"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    REVERSAL = "reversal", "Reversal"


class LedgerTransaction(models.Model):
    """A balanced set of entries posted together. Never changed: a correction is a new
    transaction that `reverses` this one. PostgreSQL refuses UPDATE, DELETE and TRUNCATE,
    and refuses to commit one with fewer than two entries (ledger/0002_database_guards)."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_ledger_transaction_id, editable=False
    )
    kind = models.CharField(max_length=32, choices=LedgerTransactionKind.choices)
    description = models.CharField(max_length=500, blank=True)
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The PostgreSQL transaction that inserted the row, stamped by a trigger whatever the
    # insert says: entries are refused for a transaction created in another one (ledger/0003).
    created_in_xact = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A reversal points at what it reverses, and nothing else does.
            models.CheckConstraint(
                condition=Q(kind=LedgerTransactionKind.REVERSAL, reverses__isnull=False)
                | (~Q(kind=LedgerTransactionKind.REVERSAL) & Q(reverses__isnull=True)),
                name="ledger_transaction_reversal_points_back",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class LedgerEntry(models.Model):
    """One leg: a signed amount posted to one account (positive raises its balance), with
    the account's balance right after it. PostgreSQL refuses UPDATE, DELETE and TRUNCATE,
    and refuses to commit a transaction whose entries do not sum to zero per currency."""

    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="entries"
    )
    amount = models.BigIntegerField()
    currency = CurrencyField(default=None)
    balance_after = models.BigIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["account", "-id"], name="entry_account_newest"),
            models.Index(fields=["account", "created_at"], name="entry_account_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="entry_amount_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.amount:+d} {self.currency} on account {self.account_id}"


class ReconciliationRun(models.Model):
    """One run of `reconcile_ledger`: what it checked and every break it found."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "Everything holds"
        BROKEN = "broken", "Breaks found"
        FAILED = "failed", "Could not finish"

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    parameters = models.JSONField(default=dict)
    checked = models.JSONField(default=dict)
    breaks = models.JSONField(default=list)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"reconciliation #{self.pk} {self.status}"
