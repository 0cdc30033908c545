"""The relay: committed events become deliveries, and due deliveries go to the workers.

It takes the events not relayed yet (`Event.relayed_at` null) with `FOR UPDATE SKIP
LOCKED`, creates one delivery per subscribed, enabled endpoint of the event's merchant and
marks the events relayed, in one transaction: an event whose transaction rolled back was
never visible, one that commits late (out of id order) is still null and taken next time,
and two relays at once take disjoint events (the unique (event, endpoint) is the last
guard). The deliveries' tasks are sent once that transaction commits.

Deliveries wait in PostgreSQL, not in the broker: a pending delivery's `next_attempt_at`
says when its next attempt is due, or until when the task sent for it owns it (the
dispatch lease). `deliveries_dispatch_due` sends the tasks of the due ones, so a task the
broker lost (Redis down, a worker killed) is sent again once its lease runs out, and the
retry schedule's long delays (hours) are never a broker countdown. Each task carries the
attempt number it may make; a second task for the same attempt finds it taken and does
nothing.

It runs from Celery beat every WEBHOOK_RELAY_INTERVAL_SECONDS (`webhooks.tasks.relay`),
and at once after every commit that wrote events (`relay_soon`, on
audit.services.events_committed). In the demo (eager Celery) both run in-process."""

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import Event
from core.db import insert_rows
from webhooks.models import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointStatus,
)

logger = logging.getLogger(__name__)

RELAY_TASK = "webhooks.tasks.relay"
DELIVER_TASK = "webhooks.tasks.deliver"


def _lease_end() -> Any:
    return timezone.now() + timedelta(seconds=settings.WEBHOOK_DISPATCH_LEASE_SECONDS)


def deliveries_send_on_commit(due: Sequence[tuple[int, int]]) -> None:
    """Once the current transaction commits, send a delivery task for each (delivery id,
    attempt number). If the broker refuses, the deliveries are made due again at once,
    for the next relay after the broker is back."""
    if not due:
        return
    due = list(due)

    def send() -> None:
        task = current_app.tasks[DELIVER_TASK]
        for sent, (delivery_id, attempt) in enumerate(due):
            try:
                task.apply_async(args=(delivery_id, attempt))
            except Exception:
                logger.warning(
                    "webhook delivery tasks not sent (broker down?); %d left for the next relay",
                    len(due) - sent,
                    exc_info=True,
                )
                WebhookDelivery.objects.filter(
                    pk__in=[pk for pk, _ in due[sent:]], status=WebhookDeliveryStatus.PENDING
                ).update(next_attempt_at=timezone.now())
                return

    transaction.on_commit(send, robust=True)


def events_relay(*, limit: int | None = None) -> int:
    """Turn up to `limit` committed, unrelayed events into deliveries; how many events."""
    limit = limit or settings.WEBHOOK_RELAY_BATCH
    with transaction.atomic():
        events = list(
            Event.objects.filter(relayed_at__isnull=True)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .only("id", "merchant_id", "type", "created_at")[:limit]
        )
        if not events:
            return 0
        endpoints: dict[int, list[WebhookEndpoint]] = {}
        for endpoint in WebhookEndpoint.objects.filter(
            merchant_id__in={event.merchant_id for event in events if event.merchant_id},
            status=WebhookEndpointStatus.ENABLED,
            deleted_at__isnull=True,
        ).only("id", "merchant_id", "enabled_events", "created_at"):
            endpoints.setdefault(endpoint.merchant_id, []).append(endpoint)
        now, lease_end = timezone.now(), _lease_end()
        deliveries = [
            WebhookDelivery(
                event_id=event.pk,
                endpoint_id=endpoint.pk,
                merchant_id=endpoint.merchant_id,
                next_attempt_at=lease_end,
                created_at=now,
                updated_at=now,
            )
            for event in events
            for endpoint in endpoints.get(event.merchant_id or 0, [])
            # An endpoint receives what happened after it was registered.
            if endpoint.subscribes_to(event.type) and endpoint.created_at <= event.created_at
        ]
        if not insert_rows(deliveries, ignore_conflicts=True):
            # Some existed already (nothing else creates them; kept as a guard): send what
            # is still pending of these events.
            deliveries = list(
                WebhookDelivery.objects.filter(
                    event_id__in=[event.pk for event in events],
                    status=WebhookDeliveryStatus.PENDING,
                    attempts=0,
                )
            )
        Event.objects.filter(pk__in=[event.pk for event in events]).update(relayed_at=now)
        deliveries_send_on_commit([(delivery.pk, 1) for delivery in deliveries])
    return len(events)


def deliveries_dispatch_due(*, limit: int | None = None) -> int:
    """Send the tasks of up to `limit` pending deliveries whose next attempt is due (or
    whose task was lost), each leased for WEBHOOK_DISPATCH_LEASE_SECONDS; how many."""
    limit = limit or settings.WEBHOOK_RELAY_BATCH
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.filter(
                status=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
            )
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", "attempts")[:limit]
        )
        if not due:
            return 0
        WebhookDelivery.objects.filter(pk__in=[pk for pk, _ in due]).update(
            next_attempt_at=_lease_end()
        )
        deliveries_send_on_commit([(pk, attempts + 1) for pk, attempts in due])
    return len(due)


def relay_run() -> tuple[int, int]:
    """One run of the relay: every waiting event (in batches), then the due deliveries.
    Returns (events relayed, deliveries dispatched)."""
    relayed = 0
    while True:
        batch = events_relay()
        relayed += batch
        if batch < settings.WEBHOOK_RELAY_BATCH:
            break
    return relayed, deliveries_dispatch_due()


def relay_soon(**kwargs: Any) -> None:
    """Receiver of audit.services.events_committed: the relay task, sent now. When the
    broker cannot take it, the events wait for the beat's next run."""
    try:
        current_app.tasks[RELAY_TASK].apply_async()
    except Exception:
        logger.warning("webhook relay not sent (broker down?); beat will run it", exc_info=True)
