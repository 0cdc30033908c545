"""The relay: two at once relay no event twice to an endpoint, and events committed while
Redis is unreachable wait in PostgreSQL and all go out once it is back."""

import threading
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings
from standardwebhooks import Webhook

from accounts.services import customer_create
from audit.models import Event
from tests.factories import MerchantFactory
from tests.webhooks.conftest import BROKER_URL
from tests.webhooks.receiver import Receiver
from tests.workers import embedded_worker, tasks_through_broker, wait_until
from webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from webhooks.relay import relay_run
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)
UNREACHABLE_BROKER = "redis://127.0.0.1:1/2"  # nothing listens on port 1


def _all_delivered(receiver: Receiver, events: int, endpoints: int) -> bool:
    return len(receiver.requests()) >= events * endpoints and not (
        WebhookDelivery.objects.exclude(status=WebhookDeliveryStatus.SUCCEEDED).exists()
    )


@pytest.mark.usefixtures("beat")
def test_relays_running_at_once_deliver_each_event_once_per_endpoint(
    settings: Settings, receiver: Receiver
) -> None:
    settings.WEBHOOK_DISPATCH_LEASE_SECONDS = 60  # nothing here is lost: no second send
    settings.WEBHOOK_RELAY_BATCH = 7  # small batches: the relays interleave
    merchant = MerchantFactory.create()
    secrets = {
        f"/hooks?endpoint={number}": webhook_endpoint_create(
            merchant=merchant, url=f"{receiver.url}?endpoint={number}", enabled_events=["*"]
        )[1]
        for number in range(2)
    }
    stop = threading.Event()
    errors: list[BaseException] = []

    def relay_loop() -> None:
        try:
            while not stop.is_set():
                relay_run()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    relays = [threading.Thread(target=relay_loop) for _ in range(3)]
    for relay in relays:
        relay.start()
    try:
        for number in range(60):
            customer_create(merchant=merchant, name=f"customer {number}")
        wait_until(lambda: _all_delivered(receiver, 60, 2), seconds=60)
    finally:
        stop.set()
        for relay in relays:
            relay.join(10)
    assert errors == []
    events = set(
        Event.objects.filter(merchant=merchant, type="customer.created").values_list(
            "public_id", flat=True
        )
    )
    assert len(events) == 60
    assert WebhookDelivery.objects.count() == 120
    # Each endpoint got each event once, signed with its own secret.
    for path, secret in secrets.items():
        requests = [request for request in receiver.requests() if request.path == path]
        counts = Counter(request.webhook_id for request in requests)
        assert set(counts) == events
        assert set(counts.values()) == {1}
        webhook = Webhook(secret)
        for request in requests:
            webhook.verify(request.body, request.headers)


def test_events_committed_while_redis_is_unreachable_go_out_once_it_is_back(
    settings: Settings, receiver: Receiver, quick_schedule: None
) -> None:
    merchant = MerchantFactory.create()
    _, secret = webhook_endpoint_create(merchant=merchant, url=receiver.url, enabled_events=["*"])
    with tasks_through_broker(settings, UNREACHABLE_BROKER):
        for number in range(5):
            customer_create(merchant=merchant, name=f"customer {number}")  # commits anyway
        relay_run()  # a relay that runs meanwhile cannot send its deliveries' tasks either
    assert receiver.requests() == []
    # Relayed: five deliveries, none attempted, due at once for the next relay.
    deliveries = WebhookDelivery.objects.filter(merchant=merchant)
    assert [(d.status, d.attempts) for d in deliveries] == [("pending", 0)] * 5
    assert all(d.next_attempt_at and d.next_attempt_at <= timezone.now() for d in deliveries)

    with embedded_worker(settings, BROKER_URL):
        relay_run()  # beat's next run, once Redis answers
        wait_until(lambda: _all_delivered(receiver, 5, 1), seconds=30)
    payloads = receiver.verified(secret)
    assert sorted(payload["data"]["object"]["name"] for payload in payloads) == [  # type: ignore[index]
        f"customer {number}" for number in range(5)
    ]
