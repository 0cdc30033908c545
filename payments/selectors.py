"""Reads of payments beyond a plain lookup."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
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
        timelines[object_id].append(_timeline_entry(public_id, type, created))
    return attempts, timelines


def payment_attempts_and_timelines_created(
    payment: Payment,
) -> tuple[dict[int, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """`payment_attempts_and_timelines` of a payment just created, from the attempt and the
    event `payment_create` wrote with it (`Payment.created_with`): no query."""
    assert payment.created_with is not None  # noqa: S101 - only for what payment_create returns
    attempt, event = payment.created_with
    return (
        {payment.pk: [payment_attempt_data(attempt)]},
        {payment.public_id: [_timeline_entry(event.public_id, event.type, event.created_at)]},
    )


def _timeline_entry(public_id: str, type: str, created: datetime) -> dict[str, Any]:
    return {"id": public_id, "type": type, "created": created}
