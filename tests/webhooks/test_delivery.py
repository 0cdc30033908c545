"""Deliveries through a real Celery worker (Redis db 2) to a real HTTP receiver on
127.0.0.1, checked with the standardwebhooks package as a merchant's receiver would."""

import json

import pytest
from django.db import transaction

from accounts.models import Merchant
from accounts.services import customer_create
from audit.models import AuditLog, DeadLetter, Event
from tests.factories import MerchantFactory
from tests.webhooks.receiver import Receiver
from tests.workers import wait_until
from webhooks.models import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointStatus,
)
from webhooks.services import webhook_endpoint_create, webhook_endpoint_rotate_secret

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("beat")]
TIMEOUT = 20


def _endpoint(
    receiver: Receiver, merchant: Merchant | None = None, events: list[str] | None = None
) -> tuple[WebhookEndpoint, str]:
    return webhook_endpoint_create(
        merchant=merchant or MerchantFactory.create(),
        url=receiver.url,
        enabled_events=events or ["*"],
    )


def _delivery_of(event: Event) -> WebhookDelivery:
    return WebhookDelivery.objects.get(event=event)


def _settled(event_count: int) -> bool:
    return (
        WebhookDelivery.objects.count() == event_count
        and not WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING).exists()
    )


def test_each_event_is_delivered_signed_as_the_api_shows_it(
    receiver: Receiver, client: object
) -> None:
    endpoint, secret = _endpoint(receiver)
    customer = customer_create(merchant=endpoint.merchant, name="Ada")

    wait_until(lambda: len(receiver.requests()) == 1, seconds=TIMEOUT)
    event = Event.objects.get(object_id=customer.public_id)
    [payload] = receiver.verified(secret)  # raises unless standardwebhooks verifies it
    assert payload["id"] == event.public_id
    assert payload["type"] == "customer.created"
    assert payload["data"]["object"]["id"] == customer.public_id  # type: ignore[index]
    [request] = receiver.requests()
    assert request.webhook_id == event.public_id
    assert request.headers["content-type"] == "application/json"
    wait_until(lambda: _delivery_of(event).status == WebhookDeliveryStatus.SUCCEEDED, seconds=5)
    delivery = _delivery_of(event)
    [attempt] = delivery.attempt_log.all()
    assert (attempt.number, attempt.status_code, attempt.succeeded) == (1, 200, True)
    assert attempt.response_body == '{"ok": true}'


def test_an_endpoint_gets_only_the_types_it_subscribed_to(receiver: Receiver) -> None:
    merchant = MerchantFactory.create()
    _endpoint(receiver, merchant, events=["account.created"])
    customer_create(merchant=merchant, name="not sent")
    other = MerchantFactory.create()
    customer_create(merchant=other, name="another merchant's")
    from tests.factories import AccountFactory

    account = AccountFactory.create(merchant=merchant, currency="EUR")

    wait_until(lambda: len(receiver.requests()) >= 1, seconds=TIMEOUT)
    wait_until(lambda: Event.objects.filter(relayed_at__isnull=True).count() == 0, seconds=5)
    [request] = receiver.requests()
    body = json.loads(request.body)
    assert (body["type"], body["data"]["object"]["id"]) == ("account.created", account.public_id)


def test_500s_and_a_timeout_are_retried_with_the_same_webhook_id(receiver: Receiver) -> None:
    endpoint, secret = _endpoint(receiver)
    receiver.answer(500, 503, ("sleep", 1.5), 200)
    customer_create(merchant=endpoint.merchant, name="Ada")

    wait_until(lambda: _settled(1), seconds=TIMEOUT)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED
    requests = receiver.requests()
    assert len(requests) == 4
    assert {r.webhook_id for r in requests} == {delivery.event.public_id}
    assert len(receiver.verified(secret)) == 4  # every attempt signed afresh
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [(a.number, a.status_code) for a in attempts] == [
        (1, 500),
        (2, 503),
        (3, None),
        (4, 200),
    ]
    assert attempts[2].error.startswith("timeout")
    assert delivery.attempts == 4


def test_410_disables_the_endpoint_at_once(receiver: Receiver) -> None:
    endpoint, _ = _endpoint(receiver)
    receiver.answer(410)
    customer_create(merchant=endpoint.merchant, name="Ada")

    def disabled() -> bool:
        endpoint.refresh_from_db()
        return endpoint.status == WebhookEndpointStatus.DISABLED

    wait_until(disabled, seconds=TIMEOUT)
    assert len(receiver.requests()) == 1
    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.FAILED
    assert (endpoint.status, endpoint.disabled_reason) == (WebhookEndpointStatus.DISABLED, "gone")
    assert Event.objects.filter(
        type="webhook_endpoint.disabled", object_id=endpoint.public_id
    ).exists()
    assert AuditLog.objects.filter(
        action="webhook_endpoint.disabled", object_id=endpoint.public_id
    ).exists()
    # Nothing more is sent to it.
    customer_create(merchant=endpoint.merchant, name="Bob")
    wait_until(lambda: not Event.objects.filter(relayed_at__isnull=True).exists(), seconds=5)
    assert len(receiver.requests()) == 1


def test_a_redirect_is_not_followed_and_counts_as_a_failure(receiver: Receiver) -> None:
    from tests.webhooks.receiver import receiving

    with receiving() as elsewhere:
        endpoint, _ = _endpoint(receiver)
        receiver.answer(("redirect", elsewhere.url), 200)
        customer_create(merchant=endpoint.merchant, name="Ada")

        wait_until(lambda: _settled(1), seconds=TIMEOUT)
        assert elsewhere.requests() == []
    attempts = list(WebhookDelivery.objects.get().attempt_log.order_by("number"))
    assert [(a.status_code, a.succeeded) for a in attempts] == [(302, False), (200, True)]
    assert "not followed" in attempts[0].error


def test_an_endpoint_failing_its_whole_schedule_is_disabled_and_its_deliveries_dead(
    receiver: Receiver,
) -> None:
    endpoint, _ = _endpoint(receiver)
    receiver.answer(500)
    customer_create(merchant=endpoint.merchant, name="Ada")

    def disabled() -> bool:
        endpoint.refresh_from_db()
        return endpoint.status == WebhookEndpointStatus.DISABLED

    wait_until(disabled, seconds=TIMEOUT)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.DEAD, 5)  # 1 + 4
    assert len(receiver.requests()) == 5
    dead_letter = DeadLetter.objects.get(object_id=delivery.public_id)
    assert (dead_letter.kind, dead_letter.task_name, dead_letter.args) == (
        "webhook_delivery",
        "webhooks.tasks.retry_delivery",
        [delivery.pk],
    )
    endpoint.refresh_from_db()
    assert (endpoint.status, endpoint.disabled_reason) == (
        WebhookEndpointStatus.DISABLED,
        "failing",
    )
    assert AuditLog.objects.filter(
        action="webhook_endpoint.disabled", object_id=endpoint.public_id
    ).exists()
    assert Event.objects.filter(type="webhook_endpoint.disabled").count() == 1


def test_during_a_rotation_both_secrets_verify(receiver: Receiver) -> None:
    endpoint, old_secret = _endpoint(receiver)
    endpoint, new_secret = webhook_endpoint_rotate_secret(endpoint=endpoint)
    customer_create(merchant=endpoint.merchant, name="Ada")

    wait_until(lambda: len(receiver.requests()) == 1, seconds=TIMEOUT)
    assert receiver.verified(old_secret) == receiver.verified(new_secret)
    assert len(receiver.requests()[0].headers["webhook-signature"].split(" ")) == 2


def test_a_rolled_back_transaction_sends_nothing(receiver: Receiver) -> None:
    endpoint, _ = _endpoint(receiver)

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        customer_create(merchant=endpoint.merchant, name="never")
        raise Abandon
    customer_create(merchant=endpoint.merchant, name="kept")

    wait_until(lambda: len(receiver.requests()) == 1, seconds=TIMEOUT)
    wait_until(lambda: _settled(1), seconds=5)
    assert json.loads(receiver.requests()[0].body)["data"]["object"]["name"] == "kept"
