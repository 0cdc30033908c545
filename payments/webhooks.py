"""Inbound provider webhooks: receiving them (verify, store once, enqueue) and processing
them (find the attempt the event is about and ask the provider where it stands).

The event itself is never applied: a webhook only says "look at this object now". The
provider's current state, fetched by `attempt_recover`, is what is applied, through the
same locked `attempt_result_apply` as every other answer. So events that arrive late,
twice or out of order all end in the provider's truth, and an attempt already final is
left alone (docs/payments.md "Inbound provider webhooks").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import dead_letter_record, dead_letters_resolve
from core.db import insert_rows
from payments.attempts import attempt_recover
from payments.models import (
    AttemptStatus,
    Payment,
    PaymentAttempt,
    ProviderWebhook,
    ProviderWebhookStatus,
)
from payments.providers.base import OperationKind, ProviderEvent, WebhookInvalid
from payments.providers.registry import adapter_get

logger = logging.getLogger(__name__)

WEBHOOK_TASK = "payments.tasks.process_provider_webhook"
DEAD_LETTER_KIND = "inbound_webhook"
OBJECT_TYPE = "provider_webhook"

_UNRESOLVED = (AttemptStatus.PENDING, AttemptStatus.UNKNOWN)
_PAYMENT_KINDS = (OperationKind.AUTHORIZE, OperationKind.CAPTURE, OperationKind.CANCEL)


@dataclass(frozen=True)
class Received:
    """What one verified POST held: the ids of the events stored now (each has its task
    enqueued on commit), and how many were stored before (duplicates: only answered)."""

    stored: list[int]
    duplicates: int


def _storable(event: ProviderEvent) -> bool:
    """Whether the event's texts are ones PostgreSQL stores: signed is not well-formed, and
    a NUL or a lone surrogate from JSON's escapes would make the INSERT raise."""
    text = "".join((event.event_id, event.type, event.reference, event.attempt_reference))
    return "\x00" not in text and text.encode("utf-8", "replace").decode() == text


def _row(event: ProviderEvent, body: bytes, signature_headers: dict[str, str]) -> ProviderWebhook:
    return ProviderWebhook(
        provider=event.provider,
        event_id=event.event_id[:255],
        type=event.type[:100],
        kind=str(event.kind),
        object_reference=event.reference[:255],
        attempt_reference=event.attempt_reference[:64],
        body=body,
        signature_headers=signature_headers,
    )


def provider_webhook_receive(*, provider: str, body: bytes, headers: Mapping[str, str]) -> Received:
    """Verify a provider's POST (raises WebhookInvalid: nothing is stored) and store each
    event it holds once: `INSERT … ON CONFLICT DO NOTHING` on (provider, event_id), so a
    provider's retry, or five copies at once, store one row and enqueue one task."""
    adapter = adapter_get(provider)
    events = adapter.webhook_parse(body=body, headers=headers)
    if not all(_storable(event) for event in events):
        raise WebhookInvalid("an event's id, type or reference is not text (a NUL, a surrogate)")
    signature_headers = {
        name: headers[name] for name in adapter.webhook_signature_headers if name in headers
    }
    stored, duplicates = [], 0
    # Each event its own statement, committed at once (no transaction around them: a
    # BEGIN and a COMMIT more per request, for nothing: the events are independent, and a
    # POST cut short is sent again by the provider, its stored events then duplicates).
    for event in events:  # one per POST from both providers; Adyen may batch
        row = _row(event, body, signature_headers)
        if insert_rows([row], ignore_conflicts=True):
            stored.append(row.pk)
        else:
            duplicates += 1
    if stored:
        # At once in autocommit; after the commit of a caller's transaction, if any.
        transaction.on_commit(lambda: _enqueue(stored))
    return Received(stored=stored, duplicates=duplicates)


def _enqueue(webhook_ids: list[int]) -> None:
    """Send each stored webhook's task. A broker that refuses is logged, not raised: the
    webhook is stored and answered, and the sweep (provider_webhooks_sweep) sends it."""
    from payments.tasks import process_provider_webhook  # tasks import this module

    for webhook_id in webhook_ids:
        try:
            process_provider_webhook.delay(webhook_id)
        except Exception:
            logger.exception("provider webhook %s: its task could not be sent", webhook_id)


class Outcome(StrEnum):
    PROCESSED = "processed"  # the attempt asked about and settled, or nothing to do
    PARKED = "parked"  # its object not found yet, or the provider could not tell: later


@dataclass(frozen=True)
class Processed:
    outcome: Outcome
    reason: str = ""  # why parked


def _unresolved_attempt(webhook: ProviderWebhook) -> int | None:
    """The unresolved attempt the event is about: the one it names (our id, echoed by the
    provider), or the one of the provider's object (a refund's re_…, a payout's po_…), or
    the open operation of the payment it is about (pi_…, a pspReference)."""
    attempts = PaymentAttempt.objects.filter(provider=webhook.provider, status__in=_UNRESOLVED)
    if webhook.attempt_reference:
        found = attempts.filter(public_id=webhook.attempt_reference).values_list("pk", flat=True)
        if found:
            return found[0]
    if not webhook.object_reference:
        return None
    by_reference = attempts.filter(provider_reference=webhook.object_reference)
    found = by_reference.values_list("pk", flat=True)[:1]
    if found:
        return found[0]
    if webhook.kind in _PAYMENT_KINDS:
        found = attempts.filter(
            payment__provider=webhook.provider,
            payment__provider_reference=webhook.object_reference,
        ).values_list("pk", flat=True)[:1]
        if found:
            return found[0]
    return None


def _known(webhook: ProviderWebhook) -> bool:
    """Whether we hold what the event is about (its attempts all final by now)."""
    if (
        webhook.attempt_reference
        and PaymentAttempt.objects.filter(
            provider=webhook.provider, public_id=webhook.attempt_reference
        ).exists()
    ):
        return True
    return (
        webhook.kind in _PAYMENT_KINDS
        and bool(webhook.object_reference)
        and Payment.objects.filter(
            provider=webhook.provider, provider_reference=webhook.object_reference
        ).exists()
    )


def provider_webhook_process(*, webhook_id: int) -> Processed:
    """Process one stored webhook: find its unresolved attempt and have the provider's
    current state applied (`attempt_recover`); nothing to do when what it is about has
    ended already; parked when we do not know the object yet (its webhook raced ahead of
    our own record of the reference) or the provider could not tell. Idempotent: a
    processed webhook is left alone, and two runs at once end in one transition (the
    attempt is settled under its payment's lock, once)."""
    ProviderWebhook.objects.filter(pk=webhook_id).update(tries=F("tries") + 1)
    webhook = ProviderWebhook.objects.defer("body").get(pk=webhook_id)
    if webhook.status == ProviderWebhookStatus.PROCESSED:
        return Processed(Outcome.PROCESSED)
    attempt_id = _unresolved_attempt(webhook)
    if attempt_id is None:
        if _known(webhook):
            return _processed(webhook_id)
        return _parked(webhook_id, f"no {webhook.kind} found for {webhook.object_reference!r}")
    applied = attempt_recover(attempt_id=attempt_id)
    if applied.retry:
        attempt = applied.attempt
        return _parked(
            webhook_id,
            f"the provider could not tell about {attempt.public_id}: "
            f"{attempt.failure_code} {attempt.failure_message}",
        )
    return _processed(webhook_id)


def _processed(webhook_id: int) -> Processed:
    with transaction.atomic():
        ProviderWebhook.objects.filter(pk=webhook_id).exclude(
            status=ProviderWebhookStatus.PROCESSED
        ).update(status=ProviderWebhookStatus.PROCESSED, processed_at=timezone.now(), last_error="")
        # An operator's retry, or a late run, finished it: its dead letter needs no one.
        dead_letters_resolve(object_type=OBJECT_TYPE, object_id=str(webhook_id))
    return Processed(Outcome.PROCESSED)


def _parked(webhook_id: int, reason: str) -> Processed:
    ProviderWebhook.objects.filter(pk=webhook_id).exclude(
        status__in=[ProviderWebhookStatus.PROCESSED, ProviderWebhookStatus.DEAD]
    ).update(status=ProviderWebhookStatus.PARKED, last_error=reason[:10_000])
    return Processed(Outcome.PARKED, reason)


def provider_webhook_tries(*, webhook_id: int) -> int:
    return int(ProviderWebhook.objects.values_list("tries", flat=True).get(pk=webhook_id))


def provider_webhook_bury(*, webhook_id: int, reason: str) -> None:
    """A webhook still parked after its tries: dead, with a dead letter (kind
    inbound_webhook) that an operator retries from the admin once the cause is fixed."""
    with transaction.atomic():
        webhook = ProviderWebhook.objects.select_for_update().defer("body").get(pk=webhook_id)
        if webhook.status == ProviderWebhookStatus.PROCESSED:
            return  # processed meanwhile (another run)
        webhook.status = ProviderWebhookStatus.DEAD
        webhook.last_error = reason[:10_000]
        webhook.save(update_fields=["status", "last_error"])
        dead_letter_record(
            kind=DEAD_LETTER_KIND,
            task_name=WEBHOOK_TASK,
            args=[webhook_id],
            object_type=OBJECT_TYPE,
            object_id=str(webhook_id),
            last_error=f"{webhook.provider} {webhook.type} {webhook.event_id}: {reason}",
            attempts=webhook.tries,
        )


def provider_webhooks_sweep() -> int:
    """Send the task again of every webhook still `received` after
    PROVIDER_WEBHOOK_SWEEP_AFTER_SECONDS: one whose task was never sent (the broker down
    when it came) or lost; and of every one still `parked` after that and its whole retry
    schedule (MAX_TRIES delays of at most PAYMENT_TASK_BACKOFF_MAX_SECONDS): its retry was
    lost (a retry the broker refuses is dropped by Celery), and sent again it ends
    processed or dead. Processing is idempotent, so a task sent twice does no harm.
    Returns how many were sent."""
    before = timezone.now() - timedelta(seconds=settings.PROVIDER_WEBHOOK_SWEEP_AFTER_SECONDS)
    schedule = timedelta(
        seconds=settings.PROVIDER_WEBHOOK_MAX_TRIES * settings.PAYMENT_TASK_BACKOFF_MAX_SECONDS
    )
    waiting = list(
        ProviderWebhook.objects.filter(
            Q(status=ProviderWebhookStatus.RECEIVED, received_at__lte=before)
            | Q(status=ProviderWebhookStatus.PARKED, received_at__lte=before - schedule)
        )
        .order_by("pk")
        .values_list("pk", flat=True)[: settings.PROVIDER_WEBHOOK_SWEEP_BATCH]
    )
    _enqueue(waiting)
    return len(waiting)
