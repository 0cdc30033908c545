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
and soon after every commit that wrote events (`relay_soon`, on
audit.services.events_committed: the events only; one task per process and
WEBHOOK_RELAY_COALESCE_SECONDS serves all its commits meanwhile). That run makes the
first attempts of the deliveries it created itself when they are few
(WEBHOOK_RELAY_INLINE_MAX), instead of a task for each: one queue hop less for the usual
commit of one event. In the demo (eager Celery), where no beat runs, each commit that
writes events also sends the due deliveries."""

import logging
import time
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
# A delivery's id and the number of the attempt to make.
Due = tuple[int, int]


def _lease_end() -> Any:
    return timezone.now() + timedelta(seconds=settings.WEBHOOK_DISPATCH_LEASE_SECONDS)


def post_seconds_max() -> float:
    """The longest a delivery's POST may take in all (connecting, sending, the answer),
    however slowly the endpoint answers (webhooks.addresses.request_deadline)."""
    return 3 * settings.WEBHOOK_TIMEOUT_SECONDS


def attempt_lease_end() -> Any:
    """Until when a claimed attempt owns its delivery: its POST's time, and the dispatch
    lease (a worker that dies meanwhile leaves it to the relay after that)."""
    return timezone.now() + timedelta(
        seconds=post_seconds_max() + settings.WEBHOOK_DISPATCH_LEASE_SECONDS
    )


def deliveries_send_on_commit(due: Sequence[Due]) -> None:
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


def events_relay(
    *, limit: int | None = None, keep_at_most: int = 0
) -> tuple[int, list[WebhookDelivery]]:
    """Turn up to `limit` committed, unrelayed events into deliveries. Returns how many
    events, and, when they make at most `keep_at_most` deliveries, those deliveries with
    their first attempt claimed (their event and endpoint loaded) for the caller to make
    once this commits; otherwise a task is sent for each."""
    limit = limit or settings.WEBHOOK_RELAY_BATCH
    with transaction.atomic():
        events = list(
            Event.objects.filter(relayed_at__isnull=True)
            .order_by("id")
            .select_for_update(skip_locked=True)[:limit]
        )
        if not events:
            return 0, []
        endpoints: dict[int, list[WebhookEndpoint]] = {}
        for endpoint in WebhookEndpoint.objects.filter(
            merchant_id__in={event.merchant_id for event in events if event.merchant_id},
            status=WebhookEndpointStatus.ENABLED,
            deleted_at__isnull=True,
        ):
            endpoints.setdefault(endpoint.merchant_id, []).append(endpoint)
        pairs = [
            (event, endpoint)
            for event in events
            for endpoint in endpoints.get(event.merchant_id or 0, [])
            # An endpoint receives what happened after it was registered.
            if endpoint.subscribes_to(event.type) and endpoint.created_at <= event.created_at
        ]
        keep = len(pairs) <= keep_at_most
        now = timezone.now()
        deliveries = [
            WebhookDelivery(
                event=event,
                endpoint=endpoint,
                merchant_id=endpoint.merchant_id,
                # Kept: claimed here, as a task's first attempt would claim it.
                attempts=1 if keep else 0,
                next_attempt_at=attempt_lease_end() if keep else _lease_end(),
                created_at=now,
                updated_at=now,
            )
            for event, endpoint in pairs
        ]
        if not insert_rows(deliveries, ignore_conflicts=True):
            # Some existed already (nothing else creates them; kept as a guard): send what
            # is still pending of these events.
            keep = False
            deliveries = list(
                WebhookDelivery.objects.filter(
                    event_id__in=[event.pk for event in events],
                    status=WebhookDeliveryStatus.PENDING,
                    attempts=0,
                )
            )
        Event.objects.filter(pk__in=[event.pk for event in events]).update(relayed_at=now)
        if keep:
            return len(events), deliveries
        deliveries_send_on_commit([(delivery.pk, delivery.attempts + 1) for delivery in deliveries])
    return len(events), []


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


def relay_run(*, due: bool = True, keep_at_most: int = 0) -> tuple[int, int, list[WebhookDelivery]]:
    """One run of the relay: every waiting event (in batches), then, with `due`, the due
    deliveries. Returns (events relayed, deliveries dispatched, first attempts kept for
    the caller: see `events_relay`)."""
    relayed, kept = 0, list[WebhookDelivery]()
    while True:
        batch, batch_kept = events_relay(keep_at_most=keep_at_most - len(kept))
        relayed += batch
        kept += batch_kept
        if batch < settings.WEBHOOK_RELAY_BATCH:
            break
    return relayed, deliveries_dispatch_due() if due else 0, kept


# When this process's last post-commit relay runs (time.monotonic()): a commit before then
# is covered by it, and sends nothing.
_relay_sent_runs_at = 0.0


def relay_soon(**kwargs: Any) -> None:
    """Receiver of audit.services.events_committed: the relay task for the events only
    (due deliveries are beat's), run WEBHOOK_RELAY_COALESCE_SECONDS later so that one task
    serves every commit of this process meanwhile (a payment's commits would otherwise
    cost a relay task each). When the broker cannot take it, the events wait for beat's
    next run."""
    global _relay_sent_runs_at
    eager = bool(current_app.conf.task_always_eager)
    window = 0.0 if eager else settings.WEBHOOK_RELAY_COALESCE_SECONDS
    now = time.monotonic()
    if window and now < _relay_sent_runs_at:
        return
    try:
        # Eager (the demo), no beat runs: this relay sends the due deliveries too.
        current_app.tasks[RELAY_TASK].apply_async(
            kwargs={"due": eager, "inline": True}, countdown=window
        )
        _relay_sent_runs_at = now + window
    except Exception:
        logger.warning("webhook relay not sent (broker down?); beat will run it", exc_info=True)
