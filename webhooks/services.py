"""Every write to webhook endpoints, and the retry of a delivery: each one transaction with
its audit row (docs/webhooks.md)."""

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Merchant
from audit.services import audit_log_record, change_record, dead_letter_record
from core.exceptions import InvalidState, ValidationError
from core.validation import max_length_of, validate_metadata, validate_text
from webhooks.addresses import webhook_url_validate
from webhooks.models import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointStatus,
)
from webhooks.relay import deliveries_send_on_commit
from webhooks.representations import webhook_endpoint_data
from webhooks.signing import secret_new

logger = logging.getLogger(__name__)

# What a dead letter of a delivery sends again (webhooks.tasks), named, not imported.
RETRY_TASK = "webhooks.tasks.retry_delivery"
ENABLED_EVENTS_MAX = 100
_EVENT_TYPE_MAX_LENGTH = 64


class DisabledReason:
    GONE = "gone"  # the endpoint answered 410 Gone
    FAILING = "failing"  # every attempt failed for a whole retry schedule


def _validate_enabled_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > ENABLED_EVENTS_MAX:
        raise ValidationError(
            f'enabled_events must be a list of 1 to {ENABLED_EVENTS_MAX} event types, or ["*"]',
            param="enabled_events",
        )
    types = []
    for item in value:
        validate_text(
            item, param="enabled_events", max_length=_EVENT_TYPE_MAX_LENGTH, required=True
        )
        if item != "*" and not item.replace("_", "").replace(".", "").isalnum():
            raise ValidationError(
                f"enabled_events: {item!r} is not an event type, e.g. payment.succeeded",
                param="enabled_events",
            )
        if item not in types:
            types.append(item)
    return ["*"] if "*" in types else types


def _endpoint_changed(
    endpoint: WebhookEndpoint, action: str, *, old: Mapping[str, Any], reason: str = ""
) -> None:
    audit_log_record(
        action=action,
        object_type="webhook_endpoint",
        object_id=endpoint.public_id,
        old_values=old,
        new_values=webhook_endpoint_data(endpoint),
        reason=reason,
    )


def webhook_endpoint_create(
    *,
    merchant: Merchant,
    url: str,
    enabled_events: Sequence[str],
    description: str = "",
    metadata: Mapping[str, str] | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret, which is shown this once."""
    url = webhook_url_validate(url)
    events = _validate_enabled_events(enabled_events)
    validate_text(
        description,
        param="description",
        max_length=max_length_of(WebhookEndpoint, "description"),
    )
    metadata = validate_metadata(metadata)
    secret = secret_new()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            merchant=merchant,
            url=url,
            enabled_events=events,
            description=description,
            metadata=metadata,
            secret=secret,
        )
        _endpoint_changed(endpoint, "webhook_endpoint.created", old={})
    return endpoint, secret


def _locked(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Stop sending to an endpoint for good: it disappears from the API; its deliveries
    still waiting fail; their log is kept."""
    with transaction.atomic():
        locked = _locked(endpoint)
        if locked.deleted_at is not None:
            return locked
        old = webhook_endpoint_data(locked)
        locked.deleted_at = timezone.now()
        locked.status = WebhookEndpointStatus.DISABLED
        locked.disabled_reason = "deleted"
        locked.save(update_fields=["deleted_at", "status", "disabled_reason", "updated_at"])
        _stop_waiting_deliveries(locked, WebhookDeliveryStatus.FAILED, "endpoint deleted")
        _endpoint_changed(locked, "webhook_endpoint.deleted", old=old)
    return locked


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> tuple[WebhookEndpoint, str]:
    """A new secret, shown this once; the one it replaces keeps signing (beside it) for
    WEBHOOK_SECRET_GRACE_HOURS, so receivers can switch without losing a delivery."""
    secret = secret_new()
    with transaction.atomic():
        locked = _locked(endpoint)
        if locked.deleted_at is not None:
            raise InvalidState(f"webhook endpoint {locked.public_id} is deleted")
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = timezone.now() + timedelta(
            hours=settings.WEBHOOK_SECRET_GRACE_HOURS
        )
        locked.secret = secret
        locked.save(
            update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
        )
        audit_log_record(
            action="webhook_endpoint.secret_rotated",
            object_type="webhook_endpoint",
            object_id=locked.public_id,
            new_values={"previous_secret_expires_at": locked.previous_secret_expires_at},
        )
    return locked, secret


def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, reason: str, detail: str) -> bool:
    """Stop sending to an endpoint that said it is gone (410) or failed a whole schedule:
    an audit row and a `webhook_endpoint.disabled` event say so, and its deliveries still
    waiting end (dead letters when it was failing, failed when gone). False when it was
    disabled already."""
    with transaction.atomic():
        locked = _locked(endpoint)
        if locked.status != WebhookEndpointStatus.ENABLED:
            return False
        old = webhook_endpoint_data(locked)
        locked.status = WebhookEndpointStatus.DISABLED
        locked.disabled_reason = reason
        locked.save(update_fields=["status", "disabled_reason", "updated_at"])
        change_record(
            action="webhook_endpoint.disabled",
            event_type="webhook_endpoint.disabled",
            merchant_id=locked.merchant_id,
            object_type="webhook_endpoint",
            object_id=locked.public_id,
            old_values=old,
            new_values=webhook_endpoint_data(locked),
            reason=detail,
        )
        ending = (
            WebhookDeliveryStatus.DEAD
            if reason == DisabledReason.FAILING
            else WebhookDeliveryStatus.FAILED
        )
        _stop_waiting_deliveries(locked, ending, f"endpoint disabled: {detail}")
    logger.warning("webhook endpoint %s disabled (%s): %s", locked.public_id, reason, detail)
    return True


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Send to a disabled endpoint again (an operator, once its owner fixed it). Its failed
    or dead deliveries are not resent by this: retry them."""
    with transaction.atomic():
        locked = _locked(endpoint)
        if locked.deleted_at is not None:
            raise InvalidState(f"webhook endpoint {locked.public_id} is deleted")
        if locked.status == WebhookEndpointStatus.ENABLED:
            return locked
        old = webhook_endpoint_data(locked)
        locked.status = WebhookEndpointStatus.ENABLED
        locked.disabled_reason = ""
        locked.save(update_fields=["status", "disabled_reason", "updated_at"])
        _endpoint_changed(locked, "webhook_endpoint.enabled", old=old)
    return locked


def _stop_waiting_deliveries(endpoint: WebhookEndpoint, status: str, why: str) -> None:
    """End the endpoint's pending deliveries (under its lock): `dead` ones become dead
    letters."""
    waiting = list(
        WebhookDelivery.objects.select_for_update()
        .filter(endpoint=endpoint, status=WebhookDeliveryStatus.PENDING)
        .order_by("pk")
    )
    for delivery in waiting:
        delivery_end(delivery=delivery, status=status, error=why)


def delivery_end(*, delivery: WebhookDelivery, status: str, error: str) -> None:
    """A pending delivery (locked by the caller) stops: `failed`, or `dead` with its dead
    letter."""
    delivery.status = status
    delivery.next_attempt_at = None
    delivery.last_error = error
    delivery.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])
    if status == WebhookDeliveryStatus.DEAD:
        dead_letter_record(
            kind="webhook_delivery",
            task_name=RETRY_TASK,
            args=[delivery.pk],
            object_type="webhook_delivery",
            object_id=delivery.public_id,
            last_error=error,
            attempts=delivery.attempts,
        )


def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, whatever its status (a replay of a succeeded one too),
    with the same `webhook-id`, on a fresh retry schedule; audited. Refused while its
    endpoint is disabled or deleted."""
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        endpoint = WebhookEndpoint.objects.get(pk=locked.endpoint_id)
        if endpoint.status != WebhookEndpointStatus.ENABLED:
            raise InvalidState(
                f"webhook endpoint {endpoint.public_id} is disabled; enable it first",
                code="endpoint_disabled",
            )
        old = {"status": locked.status, "attempts": locked.attempts}
        locked.status = WebhookDeliveryStatus.PENDING
        locked.schedule_offset = locked.attempts
        locked.next_attempt_at = timezone.now() + timedelta(
            seconds=settings.WEBHOOK_DISPATCH_LEASE_SECONDS
        )
        locked.save(update_fields=["status", "schedule_offset", "next_attempt_at", "updated_at"])
        audit_log_record(
            action="webhook_delivery.retried",
            object_type="webhook_delivery",
            object_id=locked.public_id,
            old_values=old,
            new_values={"status": locked.status, "attempts": locked.attempts},
        )
        deliveries_send_on_commit([(locked.pk, locked.attempts + 1)])
    return locked
