"""The public shape of webhook endpoints and deliveries: the API's and the audit values'."""

from typing import Any

from webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint


def webhook_endpoint_data(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.public_id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "enabled_events": list(endpoint.enabled_events),
        "description": endpoint.description,
        "metadata": endpoint.metadata,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason or None,
        "created": endpoint.created_at,
        "updated": endpoint.updated_at,
    }


def webhook_attempt_data(attempt: WebhookDeliveryAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "succeeded": attempt.succeeded,
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "response_body": attempt.response_body,
        "error": attempt.error or None,
        "created": attempt.created_at,
    }


def webhook_delivery_data(
    delivery: WebhookDelivery, attempts: list[WebhookDeliveryAttempt] | None = None
) -> dict[str, Any]:
    """With `attempts` (oldest first) when given."""
    data = {
        "id": delivery.public_id,
        "object": "webhook_delivery",
        "endpoint": delivery.endpoint.public_id,
        "event": delivery.event.public_id,
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error or None,
        "delivered_at": delivery.delivered_at,
        "created": delivery.created_at,
    }
    if attempts is not None:
        data["attempt_log"] = [webhook_attempt_data(attempt) for attempt in attempts]
    return data
