"""One attempt of a delivery: claim it, POST the event, record what happened and decide
what comes next (docs/webhooks.md). No transaction is open during the POST."""

import functools
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from audit.representations import event_data
from audit.services import dead_letters_resolve
from core.db import insert_rows
from webhooks.addresses import (
    AddressRefused,
    checked_client,
    request_deadline,
    scheme_refusal,
)
from webhooks.models import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointStatus,
)
from webhooks.relay import attempt_lease_end, post_seconds_max
from webhooks.services import DisabledReason, delivery_end, webhook_endpoint_disable
from webhooks.signing import signature_header

logger = logging.getLogger(__name__)

RESPONSE_BODY_MAX_BYTES = 4096
_ERROR_MAX_LENGTH = 1000


@dataclass(frozen=True)
class Answer:
    """What one POST came to."""

    status_code: int | None
    body: str
    error: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@functools.cache
def _client(timeout: float) -> httpx.Client:
    """One client per worker process (and timeout): its pool keeps connections to
    endpoints open between deliveries."""
    return checked_client(timeout=timeout)


def event_body(delivery: WebhookDelivery) -> bytes:
    """The event as GET /api/v1/events/{id} shows it, in the API's JSON."""
    return bytes(JSONRenderer().render(event_data(delivery.event)))


def _secrets(endpoint: WebhookEndpoint) -> list[str]:
    grace = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and grace is not None and grace > timezone.now():
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def _post(delivery: WebhookDelivery) -> Answer:
    endpoint = delivery.endpoint
    body = event_body(delivery)
    message_id = delivery.event.public_id  # the same for every attempt, and every endpoint
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "Moneta-Webhooks/1.0",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            _secrets(endpoint), message_id=message_id, timestamp=timestamp, body=body
        ),
    }
    started = time.monotonic()
    status_code, received, error = None, b"", ""
    refusal = scheme_refusal(endpoint.url)
    if refusal is not None:
        return Answer(status_code=None, body="", error=f"address refused: {refusal}", duration_ms=0)
    try:
        with (
            request_deadline(post_seconds_max()),
            _client(settings.WEBHOOK_TIMEOUT_SECONDS).stream(
                "POST", endpoint.url, content=body, headers=headers
            ) as response,
        ):
            status_code = response.status_code
            for chunk in response.iter_raw():
                received += chunk
                if len(received) >= RESPONSE_BODY_MAX_BYTES:
                    break  # the rest is not read: the connection is closed, not reused
    except AddressRefused as refused:
        error = f"address refused: {refused}"
    except httpx.TimeoutException as timeout:
        error = f"timeout: {type(timeout).__name__}"
    except httpx.HTTPError as failure:
        error = f"{type(failure).__name__}: {failure}"
    if status_code is not None and 300 <= status_code < 400:
        error = f"redirect to {response.headers.get('location', '?')!r} not followed"
    text = received[:RESPONSE_BODY_MAX_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd")
    return Answer(
        status_code=status_code,
        body=text,
        error=error[:_ERROR_MAX_LENGTH],
        duration_ms=int((time.monotonic() - started) * 1000),
    )


def _claim(delivery_id: int, attempt: int) -> WebhookDelivery | None:
    """Take attempt number `attempt` of a pending delivery, or None when it is not this
    task's to make (done, ended, or taken by another task). One UPDATE: the claim is its
    own transaction, and the attempt owns the delivery until the lease it sets runs out."""
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=WebhookDeliveryStatus.PENDING,
        attempts=attempt - 1,
        endpoint__status=WebhookEndpointStatus.ENABLED,
    ).update(attempts=attempt, next_attempt_at=attempt_lease_end(), updated_at=timezone.now())
    if not claimed:
        _end_if_endpoint_disabled(delivery_id)
        return None
    return WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)


def _end_if_endpoint_disabled(delivery_id: int) -> None:
    """A pending delivery whose endpoint was disabled meanwhile fails."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id, status=WebhookDeliveryStatus.PENDING)
            .first()
        )
        if delivery is not None and delivery.endpoint.status != WebhookEndpointStatus.ENABLED:
            delivery_end(
                delivery=delivery,
                status=WebhookDeliveryStatus.FAILED,
                error=f"endpoint {delivery.endpoint.disabled_reason or 'disabled'}",
            )


def retry_delay(retry: int) -> float | None:
    """Seconds before retry number `retry` (1, 2, …) of a schedule, with ±jitter; None
    when the schedule (WEBHOOK_RETRY_SCHEDULE_SECONDS) has no more."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE_SECONDS
    if retry > len(schedule):
        return None
    jitter = settings.WEBHOOK_RETRY_JITTER
    return float(schedule[retry - 1]) * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311


def _record(delivery: WebhookDelivery, attempt: int, answer: Answer) -> str | None:
    """Store the attempt and what follows from it; the reason to disable the endpoint, if
    any (done by the caller, after this commits: the endpoint's lock comes first)."""
    now = timezone.now()
    record = WebhookDeliveryAttempt(
        delivery_id=delivery.pk,
        number=attempt,
        succeeded=answer.succeeded,
        status_code=answer.status_code,
        duration_ms=answer.duration_ms,
        response_body=answer.body,
        error=answer.error,
        created_at=now,
    )
    mine = {"pk": delivery.pk, "status": WebhookDeliveryStatus.PENDING, "attempts": attempt}
    if answer.succeeded:  # the usual case, in two statements
        with transaction.atomic():
            insert_rows([record])
            done = WebhookDelivery.objects.filter(**mine).update(
                status=WebhookDeliveryStatus.SUCCEEDED,
                delivered_at=now,
                next_attempt_at=None,
                last_status_code=answer.status_code,
                last_error="",
                updated_at=now,
            )
            if done and delivery.schedule_offset:  # retried by hand: it was dead, maybe
                dead_letters_resolve(object_type="webhook_delivery", object_id=delivery.public_id)
        return None
    with transaction.atomic():
        insert_rows([record])
        locked = WebhookDelivery.objects.select_for_update().filter(**mine).first()
        if locked is None:
            return None  # ended or retried by hand meanwhile: that decides what follows
        locked.last_status_code = answer.status_code
        locked.last_error = answer.error
        if answer.status_code == 410:
            locked.save()
            delivery_end(delivery=locked, status=WebhookDeliveryStatus.FAILED, error="410 Gone")
            return DisabledReason.GONE
        delay = retry_delay(locked.attempts - locked.schedule_offset)
        if delay is not None:
            locked.next_attempt_at = now + timedelta(seconds=delay)
            locked.save()
            return None
        locked.save()
        error = answer.error or f"HTTP {answer.status_code}"
        delivery_end(
            delivery=locked,
            status=WebhookDeliveryStatus.DEAD,
            error=f"{error} (after {locked.attempts} attempts)",
        )
        # Disabled when it never took anything for this delivery's whole schedule.
        succeeded_meanwhile = WebhookDelivery.objects.filter(
            endpoint_id=locked.endpoint_id,
            status=WebhookDeliveryStatus.SUCCEEDED,
            delivered_at__gte=locked.created_at,
        ).exists()
        return None if succeeded_meanwhile else DisabledReason.FAILING


def delivery_attempt(*, delivery_id: int, attempt: int) -> str:
    """Make attempt number `attempt` of a delivery, if it is still this one's to make;
    returns how the attempt went (or `skipped`)."""
    delivery = _claim(delivery_id, attempt)
    if delivery is None:
        return "skipped"
    return delivery_attempt_claimed(delivery=delivery)


def delivery_attempt_kept(*, delivery: WebhookDelivery) -> str:
    """Make a first attempt the relay claimed in its own transaction (`events_relay`), if
    it is still the relay's: its lease is the one the relay set (so not run out and
    dispatched to another task meanwhile, which takes it with a new lease), renewed from
    now for the POST; otherwise `skipped`. The relay makes its kept attempts one after
    another, so a late one may have waited for the POSTs before it."""
    renewed = WebhookDelivery.objects.filter(
        pk=delivery.pk,
        status=WebhookDeliveryStatus.PENDING,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        endpoint__status=WebhookEndpointStatus.ENABLED,
    ).update(next_attempt_at=attempt_lease_end())
    if not renewed:
        _end_if_endpoint_disabled(delivery.pk)
        return "skipped"
    return delivery_attempt_claimed(delivery=delivery)


def delivery_attempt_claimed(*, delivery: WebhookDelivery) -> str:
    """Make the attempt of a delivery claimed already (its `attempts` counts it), its
    event and endpoint loaded; returns how it went."""
    answer = _post(delivery)
    disable = _record(delivery, delivery.attempts, answer)
    if disable is not None:
        detail = (
            "the endpoint answered 410 Gone"
            if disable == DisabledReason.GONE
            else f"every attempt of delivery {delivery.public_id} failed for its whole schedule"
        )
        webhook_endpoint_disable(endpoint=delivery.endpoint, reason=disable, detail=detail)
    return "succeeded" if answer.succeeded else "failed"
