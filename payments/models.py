from typing import TYPE_CHECKING

from django.db import models
from django.db.models import F, Q
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from core.history import history_user
from core.ids import (
    new_fx_quote_id,
    new_payment_attempt_id,
    new_payment_id,
    new_payout_id,
    new_refund_id,
    new_transfer_id,
)
from payments.providers.base import DeclineClass

if TYPE_CHECKING:
    from audit.models import Event


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


class PaymentStatus(models.TextChoices):
    """SPEC §3: processing → requires_capture → succeeded, or → failed / canceled. The moves
    between them are payments.transitions.TRANSITIONS."""

    PROCESSING = "processing", "Processing"
    REQUIRES_CAPTURE = "requires_capture", "Requires capture"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class CaptureMethod(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic"
    MANUAL = "manual", "Manual"


DECLINE_CLASS_CHOICES = [(value.value, value.value.capitalize()) for value in DeclineClass]


class Payment(models.Model):
    """A pay-in: a customer's payment method charged through a provider, the money
    credited (less the fee) to the merchant's `destination_account`. Its state changes only
    through payments.transitions; the constraints below tie each status to the fields it
    implies, so no code path can store a payment that contradicts itself."""

    public_id = models.CharField(max_length=32, unique=True, default=new_payment_id, editable=False)
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="payments"
    )
    customer = models.ForeignKey(
        "accounts.Customer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payments",
    )
    destination_account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="incoming_payments"
    )
    amount = models.BigIntegerField()
    currency = CurrencyField(default=None)
    payment_method = models.CharField(max_length=255)
    capture_method = models.CharField(max_length=16, choices=CaptureMethod.choices)
    status = models.CharField(max_length=32, choices=PaymentStatus.choices, db_index=True)
    amount_capturable = models.BigIntegerField(default=0)
    amount_captured = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    fee = models.BigIntegerField(default=0)
    net = models.BigIntegerField(default=0)
    # Set when the payment is authorized for a manual capture (SPEC "Authorization
    # deadline"): not captured by then, it is canceled by a scheduled task.
    capture_before = models.DateTimeField(null=True, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    decline_class = models.CharField(max_length=16, choices=DECLINE_CLASS_CHOICES, blank=True)
    provider = models.CharField(max_length=16)
    provider_reference = models.CharField(max_length=255, blank=True, db_index=True)
    # The capture's posting: provider clearing −captured, destination +net, fees +fee.
    ledger_transaction = models.OneToOneField(
        "ledger.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payment",
    )
    description = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Not a column: on the instance `payment_create` returns, the first attempt and the
    # event it wrote with the payment, so that the API's 202 is built from them instead of
    # being read back (payments.api.views). None on a payment read from the database.
    created_with: "tuple[PaymentAttempt, Event] | None" = None

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["capture_before"],
                condition=Q(status="requires_capture"),
                name="payment_authorization_due",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0)
                & Q(amount_refunded__lte=F("amount_captured"))
                & Q(amount_captured__lte=F("amount")),
                name="payment_refunded_within_captured_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_capturable__gte=0) & Q(amount_capturable__lte=F("amount")),
                name="payment_capturable_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(fee__gte=0)
                & Q(fee__lte=F("amount_captured"))
                & Q(net=F("amount_captured") - F("fee")),
                name="payment_fee_and_net_of_captured",
            ),
            models.CheckConstraint(
                condition=Q(
                    status=PaymentStatus.SUCCEEDED,
                    ledger_transaction__isnull=False,
                    amount_captured__gt=0,
                    amount_capturable=0,
                )
                | Q(
                    status=PaymentStatus.REQUIRES_CAPTURE,
                    ledger_transaction__isnull=True,
                    amount_captured=0,
                    amount_capturable__gt=0,
                    capture_before__isnull=False,
                )
                | (
                    Q(
                        status=PaymentStatus.FAILED,
                        ledger_transaction__isnull=True,
                        amount_captured=0,
                        amount_capturable=0,
                    )
                    & ~Q(failure_code="")
                )
                | Q(
                    status__in=[PaymentStatus.PROCESSING, PaymentStatus.CANCELED],
                    ledger_transaction__isnull=True,
                    amount_captured=0,
                    amount_capturable=0,
                ),
                name="payment_status_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class RefundReason(models.TextChoices):
    """Stripe's reasons for a refund (optional)."""

    DUPLICATE = "duplicate", "Duplicate"
    FRAUDULENT = "fraudulent", "Fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by customer"


class RefundStatus(models.TextChoices):
    """SPEC §3: pending → succeeded | failed (payments.transitions.REFUND_TRANSITIONS)."""

    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


def _outcome_consistent(*, pending: str, done: str, failed: str) -> Q:
    """A refund's or payout's status tied to its fields: pending holds its hold and has no
    posting nor error; done has its posting (the hold's capture); failed has a failure
    code and no posting."""
    return (
        Q(status__in=[pending, done], failure_code="")
        & (
            Q(status=pending, ledger_transaction__isnull=True)
            | Q(status=done, ledger_transaction__isnull=False)
        )
    ) | (Q(status=failed, ledger_transaction__isnull=True) & ~Q(failure_code=""))


class Refund(models.Model):
    """Money given back to a payment's customer through the payment's provider: all or
    part of what was captured, never more in total (`Payment.amount_refunded` counts the
    pending and succeeded refunds, under the payment's lock and a check constraint). The
    amount is held on the payment's destination account from admission (`hold`), captured
    into provider clearing when the provider confirms (`ledger_transaction`), released
    when it fails (payments/refunds.py). The fee is not returned."""

    public_id = models.CharField(max_length=32, unique=True, default=new_refund_id, editable=False)
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="refunds"
    )
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    currency = CurrencyField(default=None)
    reason = models.CharField(max_length=32, choices=RefundReason.choices, blank=True)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    provider = models.CharField(max_length=16)
    provider_reference = models.CharField(max_length=255, blank=True, db_index=True)
    hold = models.OneToOneField("accounts.Hold", on_delete=models.PROTECT, related_name="refund")
    # The hold's capture: destination −amount, provider clearing +amount.
    ledger_transaction = models.OneToOneField(
        "ledger.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refund",
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(
                condition=Q(reason__in=["", *RefundReason.values]), name="refund_reason_known"
            ),
            models.CheckConstraint(
                condition=_outcome_consistent(
                    pending=RefundStatus.PENDING,
                    done=RefundStatus.SUCCEEDED,
                    failed=RefundStatus.FAILED,
                ),
                name="refund_status_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class PayoutStatus(models.TextChoices):
    """SPEC §3: pending → paid | failed (payments.transitions.PAYOUT_TRANSITIONS)."""

    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"


# A bank account as a provider's token (the simulator's ba_ok, ba_fail): never an account
# number or an IBAN, which Moneta does not store.
BANK_DESTINATION_PATTERN = r"ba_[A-Za-z0-9_]+"


class Payout(models.Model):
    """Money sent from one of the merchant's accounts to a bank account (`destination`, a
    provider's bank token) through a provider. Held on the source account from creation
    (`hold`), captured into provider clearing when the provider reports it paid
    (`ledger_transaction`), released when it fails (payments/payouts.py)."""

    public_id = models.CharField(max_length=32, unique=True, default=new_payout_id, editable=False)
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="payouts"
    )
    source_account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="payouts"
    )
    amount = models.BigIntegerField()
    currency = CurrencyField(default=None)
    destination = models.CharField(max_length=255)
    description = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=PayoutStatus.choices, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    provider = models.CharField(max_length=16)
    provider_reference = models.CharField(max_length=255, blank=True, db_index=True)
    hold = models.OneToOneField("accounts.Hold", on_delete=models.PROTECT, related_name="payout")
    # The hold's capture: source −amount, provider clearing +amount.
    ledger_transaction = models.OneToOneField(
        "ledger.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payout",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(
                condition=Q(destination__regex=f"^{BANK_DESTINATION_PATTERN}$"),
                name="payout_destination_is_a_bank_token",
            ),
            models.CheckConstraint(
                condition=_outcome_consistent(
                    pending=PayoutStatus.PENDING,
                    done=PayoutStatus.PAID,
                    failed=PayoutStatus.FAILED,
                ),
                name="payout_status_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id


class AttemptKind(models.TextChoices):
    AUTHORIZE = "authorize", "Authorize"
    CAPTURE = "capture", "Capture"
    CANCEL = "cancel", "Cancel"
    REFUND = "refund", "Refund"
    PAYOUT = "payout", "Payout"


# The operations on a payment; a refund's and a payout's attempts name their own owner.
PAYMENT_ATTEMPT_KINDS = (AttemptKind.AUTHORIZE, AttemptKind.CAPTURE, AttemptKind.CANCEL)


class AttemptStatus(models.TextChoices):
    """`pending`: recorded, the call not answered yet (or the provider answers later);
    `unknown`: the call may or may not have been done (a timeout, a reset): asked again
    with the same key, never taken as failed. The other three are final."""

    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    DECLINED = "declined", "Declined"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown"


FINAL_ATTEMPT_STATUSES = frozenset(
    {AttemptStatus.SUCCEEDED, AttemptStatus.DECLINED, AttemptStatus.FAILED}
)


class PaymentAttempt(models.Model):
    """One operation asked of a provider, recorded before the call. Its `public_id` is the
    idempotency key sent with every try of it, so the provider acts on it at most once.
    Once final (succeeded, declined, failed) PostgreSQL refuses to change or delete it
    (payments/0004). Its owner is its payment (authorize, capture, cancel), its refund or
    its payout, exactly one of them, as its kind says."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_payment_attempt_id, editable=False
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="attempts"
    )
    refund = models.ForeignKey(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="attempts"
    )
    payout = models.ForeignKey(
        Payout, on_delete=models.PROTECT, null=True, blank=True, related_name="attempts"
    )
    kind = models.CharField(max_length=16, choices=AttemptKind.choices)
    provider = models.CharField(max_length=16)
    # Why this provider: the merchant's default, or a failover and from what.
    routing_reason = models.CharField(max_length=255, blank=True)
    amount = models.BigIntegerField(null=True, blank=True)
    currency = CurrencyField(default=None)
    status = models.CharField(
        max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.PENDING
    )
    decline_class = models.CharField(max_length=16, choices=DECLINE_CLASS_CHOICES, blank=True)
    provider_reference = models.CharField(max_length=255, blank=True)
    # The last error (a decline's code, or why the outcome is not known yet).
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    tries = models.PositiveIntegerField(default=0)
    # How many times the janitor asked the provider about it (payments.recovery).
    recovery_rounds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["updated_at"],
                condition=Q(status__in=["pending", "unknown"]),
                name="attempt_unresolved",
            ),
            # An inbound webhook's attempt, found by the provider's id of its object.
            models.Index(
                fields=["provider", "provider_reference"],
                condition=Q(status__in=["pending", "unknown"]),
                name="attempt_unresolved_reference",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind__in=["authorize", "capture", "cancel"])
                | Q(payment__isnull=False),
                name="attempt_payment_operation_names_its_payment",
            ),
            models.CheckConstraint(
                condition=Q(
                    kind__in=PAYMENT_ATTEMPT_KINDS,
                    payment__isnull=False,
                    refund__isnull=True,
                    payout__isnull=True,
                )
                | Q(
                    kind=AttemptKind.REFUND,
                    payment__isnull=True,
                    refund__isnull=False,
                    payout__isnull=True,
                )
                | Q(
                    kind=AttemptKind.PAYOUT,
                    payment__isnull=True,
                    refund__isnull=True,
                    payout__isnull=False,
                ),
                name="attempt_names_exactly_its_owner",
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gt=0),
                name="attempt_amount_positive",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["succeeded", "declined", "failed"], completed_at__isnull=False
                )
                | Q(status__in=["pending", "unknown"], completed_at__isnull=True),
                name="attempt_completed_when_final",
            ),
            models.CheckConstraint(
                condition=~Q(status="declined") | ~Q(decline_class=""),
                name="attempt_decline_has_class",
            ),
            # One operation in flight per payment: a second capture or cancel waits for the
            # first to end.
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(status__in=["pending", "unknown"]),
                name="attempt_one_unresolved_per_payment",
            ),
            models.UniqueConstraint(
                fields=["refund"],
                condition=Q(status__in=["pending", "unknown"]),
                name="attempt_one_unresolved_per_refund",
            ),
            models.UniqueConstraint(
                fields=["payout"],
                condition=Q(status__in=["pending", "unknown"]),
                name="attempt_one_unresolved_per_payout",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_ATTEMPT_STATUSES


class Pricing(models.Model):
    """What the platform charges one merchant on payments in one currency: `percent_bps`
    of the captured amount plus `fixed_fee` minor units (payments.fees). No row, no fee.
    Set in the admin by finance staff; each change is audited."""

    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="pricings"
    )
    currency = CurrencyField(default=None)
    percent_bps = models.PositiveIntegerField(
        "percent (basis points)",
        default=0,
        help_text="Of the captured amount: 100 basis points = 1 %.",
    )
    fixed_fee = models.PositiveBigIntegerField(
        default=0, help_text="Minor units of the currency added to every payment's fee."
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(get_user=history_user)

    class Meta:
        verbose_name = "pricing"
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "currency"], name="pricing_one_per_merchant_and_currency"
            ),
            models.CheckConstraint(
                condition=Q(percent_bps__lte=10_000), name="pricing_percent_at_most_100"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.merchant} {self.currency}: {self.percent_bps} bps + {self.fixed_fee}"


class ProviderWebhookStatus(models.TextChoices):
    """received → processed; received → parked (its object not found yet) → processed, or
    after PROVIDER_WEBHOOK_MAX_TRIES → dead (a dead letter; an operator's retry may still
    process it). docs/payments.md "Inbound provider webhooks"."""

    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    PARKED = "parked", "Parked"
    DEAD = "dead", "Dead"


class ProviderWebhook(models.Model):
    """One event a provider sent us, verified, stored as it came (the body's bytes and the
    headers that sign it, so that it can be verified again), once: the unique
    (provider, event_id) is the deduplication of the provider's retries. Only the
    processing fields (status, tries, processed_at, last_error) ever change; PostgreSQL
    refuses anything else (payments/0005). `kind`, `object_reference` and
    `attempt_reference` are what the adapter read from it at receipt, for the lookup."""

    provider = models.CharField(max_length=16)
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    kind = models.CharField(max_length=16)  # payments.providers.base.OperationKind
    object_reference = models.CharField(max_length=255, blank=True)  # pi_…, re_…, a pspReference
    attempt_reference = models.CharField(max_length=64, blank=True)  # our att_… it echoes
    body = models.BinaryField()
    signature_headers = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(
        max_length=16,
        choices=ProviderWebhookStatus.choices,
        default=ProviderWebhookStatus.RECEIVED,
    )
    tries = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(status__in=["received", "parked", "dead"]),
                name="provider_webhook_unprocessed",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="provider_webhook_one_per_event"
            ),
            models.CheckConstraint(
                condition=Q(status="processed", processed_at__isnull=False)
                | (~Q(status="processed") & Q(processed_at__isnull=True)),
                name="provider_webhook_processed_at_when_processed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_id} ({self.status})"
