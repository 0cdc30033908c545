from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from audit.context import ActorType
from core.ids import new_event_id


class AuditLog(models.Model):
    """One append-only row per state change or operator action. PostgreSQL refuses UPDATE,
    DELETE and TRUNCATE on the table (migration audit/0002_append_only)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor = models.CharField(max_length=255, blank=True)
    # The merchant the actor acted for (an API key's), when there is one.
    merchant = models.ForeignKey(
        "accounts.Merchant",
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    # A public id, a table, a currency pair, or a staff user's or group's name (up to 150).
    object_id = models.CharField(max_length=255)
    old_values = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    new_values = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    changed_fields = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=200, blank=True, db_index=True)
    # The id the client sent in X-Request-Id, kept beside ours (bounded and validated).
    client_request_id = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.object_id} by {self.actor_type}:{self.actor}"


class Event(models.Model):
    """Something that happened to a merchant's object, written in the same transaction as
    the change (the transactional outbox that webhook delivery drains)."""

    public_id = models.CharField(max_length=32, unique=True, default=new_event_id, editable=False)
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, related_name="events", null=True
    )
    type = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # When the webhook relay handed the event on (webhooks.relay): null until then. The
    # relay takes the committed events still null, whatever order their transactions
    # committed in, and sets it in the transaction that creates their deliveries.
    relayed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            # The relay's queue: only the events not relayed yet, a handful at any time.
            models.Index(
                fields=["id"], condition=models.Q(relayed_at__isnull=True), name="event_to_relay"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"


class DeadLetterStatus(models.TextChoices):
    OPEN = "open", "Open"
    RETRIED = "retried", "Retried"
    RESOLVED = "resolved", "Resolved"  # the work ended meanwhile (the janitor, a webhook)


class DeadLetter(models.Model):
    """Work that exhausted its retries (a provider call, a webhook delivery, an inbound
    webhook), kept with its last error instead of being dropped (SPEC §3 Dead letters).
    An operator retries it from the admin once the cause is fixed: the task named here is
    sent again with the same arguments, and the task itself is idempotent."""

    kind = models.CharField(max_length=32, db_index=True)
    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    kwargs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # What the work was about, e.g. ("payment_attempt", "att_…").
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, db_index=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=16,
        choices=DeadLetterStatus.choices,
        default=DeadLetterStatus.OPEN,
        db_index=True,
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    retried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} ({self.status})"
