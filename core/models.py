"""Idempotency keys (SPEC §4.1; docs/adr/0006-idempotency-keys.md)."""

from django.db import models
from django.utils import timezone


class IdempotencyKeyState(models.TextChoices):
    IN_FLIGHT = "in_flight", "In flight"
    COMPLETED = "completed", "Completed"


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` a merchant sent with a POST, and the response it got.

    `in_flight` rows are held by the request that holds `lock_token`; only that holder may
    complete or release the row (every write is fenced on the token). On PostgreSQL the
    holder's server session (`holder_pid`, `holder_started_at`) is recorded too: once that
    session is gone (its process was killed), the key is taken over at once. `completed` rows carry
    the first response, replayed byte for byte to every retry with the same key and request.
    """

    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.CASCADE, related_name="idempotency_keys"
    )
    key = models.CharField(max_length=255)
    # sha256 (hex) of the method, the path and the canonical JSON of the body.
    fingerprint = models.CharField(max_length=64)
    request_method = models.CharField(max_length=10)
    request_path = models.CharField(max_length=2048)
    state = models.CharField(
        max_length=16, choices=IdempotencyKeyState.choices, default=IdempotencyKeyState.IN_FLIGHT
    )
    lock_token = models.UUIDField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    # The in-flight holder's PostgreSQL session (core.db.session_current); null on SQLite.
    holder_pid = models.IntegerField(null=True, blank=True)
    holder_started_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "key"], name="core_idempotency_key_unique_per_merchant"
            ),
            models.CheckConstraint(
                condition=models.Q(state=IdempotencyKeyState.IN_FLIGHT)
                | models.Q(response_status__isnull=False, response_body__isnull=False),
                name="core_idempotency_key_completed_has_response",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "created_at"], name="core_idemkey_state_created"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
