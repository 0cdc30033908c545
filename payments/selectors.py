"""Reads of payments beyond a plain lookup."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from audit.models import Event
from payments.models import Payment, PaymentAttempt
from payments.representations import payment_attempt_data


def payment_attempts_and_timelines(
    payments: Sequence[Payment],
) -> tuple[dict[int, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """For the API's payment objects: each payment's attempts (by payment pk) and its
    events (by public id), oldest first, in two queries however many payments."""
    attempts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    timelines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not payments:
        return attempts, timelines
    for attempt in PaymentAttempt.objects.filter(payment__in=payments).order_by("id"):
        assert attempt.payment_id is not None  # noqa: S101 - filtered by payment
        attempts[attempt.payment_id].append(payment_attempt_data(attempt))
    events = Event.objects.filter(
        merchant_id=payments[0].merchant_id,
        object_type="payment",
        object_id__in=[payment.public_id for payment in payments],
    ).order_by("id")
    for public_id, type, created, object_id in events.values_list(
        "public_id", "type", "created_at", "object_id"
    ):
        timelines[object_id].append({"id": public_id, "type": type, "created": created})
    return attempts, timelines
