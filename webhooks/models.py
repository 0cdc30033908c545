from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from core.history import history_user
from core.ids import new_public_id


def new_webhook_endpoint_id() -> str:
    return new_public_id("we")


def new_webhook_delivery_id() -> str:
    return new_public_id("whd")


class WebhookEndpointStatus(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


class WebhookEndpoint(models.Model):
    """A merchant's URL that receives its events, signed with the endpoint's secret
    (Standard Webhooks). During a rotation's grace period the previous secret signs too."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_webhook_endpoint_id, editable=False
    )
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2048)
    # Event types, or ["*"] for all of them.
    enabled_events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # `whsec_` + base64 of 32 random bytes; kept in clear, as signing needs it.
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    status = models.CharField(
        max_length=16,
        choices=WebhookEndpointStatus.choices,
        default=WebhookEndpointStatus.ENABLED,
        db_index=True,
    )
    disabled_reason = models.CharField(max_length=200, blank=True)
    # Deleted through the API: kept for its deliveries' log, invisible to the merchant.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(
        excluded_fields=["secret", "previous_secret"], get_user=history_user
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The relay's lookup: a merchant's live endpoints.
            models.Index(
                fields=["merchant"],
                condition=Q(status="enabled", deleted_at__isnull=True),
                name="webhook_endpoint_live",
            )
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"

    def subscribes_to(self, event_type: str) -> bool:
        return "*" in self.enabled_events or event_type in self.enabled_events


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its next attempt
    SUCCEEDED = "succeeded", "Succeeded"
    # Stopped before the end of its schedule: the endpoint answered 410, or was disabled
    # or deleted meanwhile. Retried by hand once the endpoint is enabled again.
    FAILED = "failed", "Failed"
    DEAD = "dead", "Dead"  # every attempt of its schedule failed: a dead letter


class WebhookDelivery(models.Model):
    """One event to one endpoint: created once (unique), attempted until the endpoint takes
    it or the retry schedule ends. Every attempt sends the same `webhook-id` (the event's
    id)."""

    public_id = models.CharField(
        max_length=32, unique=True, default=new_webhook_delivery_id, editable=False
    )
    event = models.ForeignKey(
        "audit.Event", on_delete=models.PROTECT, related_name="webhook_deliveries"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    # The endpoint's merchant, for tenancy filters without a join.
    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=16,
        choices=WebhookDeliveryStatus.choices,
        default=WebhookDeliveryStatus.PENDING,
        db_index=True,
    )
    # Attempts started (an attempt whose worker died has no attempt row).
    attempts = models.PositiveIntegerField(default=0)
    # Attempts made before the current schedule began (a retry by hand starts a new one).
    schedule_offset = models.PositiveIntegerField(default=0)
    # Pending: when the next attempt is due, or until when the one sent or running owns it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_event"),
        ]
        indexes = [
            # The dispatcher's queue: pending deliveries by due time.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["endpoint", "status"]),
        ]

    def __str__(self) -> str:
        return self.public_id


class WebhookDeliveryAttempt(models.Model):
    """One POST of a delivery: what the endpoint answered, or why there was no answer."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.PROTECT, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # The first RESPONSE_BODY_MAX_BYTES of the answer, decoded leniently.
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.delivery} #{self.number}"
