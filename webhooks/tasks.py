"""Webhooks' Celery tasks: thin, idempotent, late acknowledged (docs/webhooks.md)."""

import logging

from celery import shared_task
from django.conf import settings

from core.exceptions import DomainError
from webhooks.delivery import delivery_attempt, delivery_attempt_kept
from webhooks.models import WebhookDelivery
from webhooks.relay import DELIVER_TASK, RELAY_TASK, relay_run
from webhooks.services import RETRY_TASK, webhook_delivery_retry

logger = logging.getLogger(__name__)


@shared_task(name=RELAY_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def relay(due: bool = True, inline: bool = False) -> tuple[int, int]:
    """Committed events to deliveries, and (`due`) due deliveries to `deliver`: from beat
    every WEBHOOK_RELAY_INTERVAL_SECONDS, and after each commit that wrote events (events
    only, `inline`: the first attempts of a few new deliveries made here)."""
    keep = settings.WEBHOOK_RELAY_INLINE_MAX if inline else 0
    relayed, dispatched, kept = relay_run(due=due, keep_at_most=keep)
    for delivery in kept:
        delivery_attempt_kept(delivery=delivery)
    return relayed, dispatched


@shared_task(name=DELIVER_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver(delivery_id: int, attempt: int) -> str:
    """Attempt number `attempt` of a delivery (a duplicate of this task does nothing)."""
    return delivery_attempt(delivery_id=delivery_id, attempt=attempt)


@shared_task(name=RETRY_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def retry_delivery(delivery_id: int) -> str:
    """What a dead letter of a delivery sends again (the admin's Retry)."""
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    try:
        webhook_delivery_retry(delivery=delivery)
    except DomainError as error:
        logger.warning("webhook delivery %s not retried: %s", delivery.public_id, error.message)
        return "refused"
    return "retried"
