import pgtrigger
from django.db import models
from djmoney.models.fields import CurrencyField

from core.ids import new_ledger_transaction_id


class LedgerTransactionKind(models.TextChoices):
    TRANSFER = "transfer", "Transfer"
    FX_TRANSFER = "fx_transfer", "Cross-currency transfer"
    HOLD_CAPTURE = "hold_capture", "Hold capture"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    REVERSAL = "reversal", "Reversal"


_APPEND_ONLY = pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete)


class LedgerTransaction(models.Model):
    """A balanced set of entries posted together. Never changed: a correction is a new
    transaction that `reverses` this one."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_ledger_transaction_id, editable=False
    )
    kind = models.CharField(max_length=32, choices=LedgerTransactionKind.choices)
    description = models.CharField(max_length=500, blank=True)
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        triggers = [
            _APPEND_ONLY,
            # I1 at commit, for the case the entries' trigger cannot see: no entries at all.
            pgtrigger.Trigger(
                name="has_entries",
                operation=pgtrigger.Insert,
                when=pgtrigger.After,
                timing=pgtrigger.Deferred,
                func="""
                    IF (SELECT COUNT(*) FROM ledger_ledgerentry
                        WHERE transaction_id = NEW.id) < 2 THEN
                        RAISE EXCEPTION 'ledger transaction % has fewer than two entries', NEW.id
                            USING ERRCODE = 'check_violation';
                    END IF;
                    RETURN NULL;
                """,
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class LedgerEntry(models.Model):
    """One leg: a signed amount posted to one account (positive raises its balance), with
    the account's balance right after it."""

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
        triggers = [
            _APPEND_ONLY,
            # I1 at commit: every transaction's entries sum to zero in each currency.
            pgtrigger.Trigger(
                name="balanced_transaction",
                operation=pgtrigger.Insert,
                when=pgtrigger.After,
                timing=pgtrigger.Deferred,
                func="""
                    IF EXISTS (
                        SELECT 1 FROM ledger_ledgerentry
                        WHERE transaction_id = NEW.transaction_id
                        GROUP BY currency HAVING SUM(amount) <> 0
                    ) THEN
                        RAISE EXCEPTION 'ledger transaction % does not balance', NEW.transaction_id
                            USING ERRCODE = 'check_violation';
                    END IF;
                    RETURN NULL;
                """,
            ),
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
