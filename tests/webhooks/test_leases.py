"""An attempt owns its delivery for its lease; nothing makes it twice meanwhile.

The relay's inline first attempts (`relay` with `inline`) are made one after another,
after the relay's commit: one whose lease ran out meanwhile has been dispatched to another
task, which made it; the relay then leaves it alone, so the endpoint gets it once."""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings

from audit.models import Event
from tests.factories import MerchantFactory
from tests.webhooks.receiver import Receiver
from webhooks.delivery import delivery_attempt, delivery_attempt_kept
from webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookDeliveryStatus
from webhooks.relay import relay_run
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_kept_first_attempt_whose_lease_ran_out_is_not_made_twice(
    settings: Settings, receiver: Receiver
) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.1
    settings.WEBHOOK_DISPATCH_LEASE_SECONDS = 0  # an attempt's lease: 0.3 s
    endpoint, _ = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url=receiver.url, enabled_events=["*"]
    )
    # Written without the post-commit relay (eager here), which would deliver it at once.
    Event.objects.create(
        merchant=endpoint.merchant,
        type="customer.created",
        object_type="customer",
        object_id="c",
        data={},
    )
    _, _, [kept] = relay_run(due=False, keep_at_most=4)
    time.sleep(0.5)  # the relay's POSTs before this one took longer than its lease
    # Meanwhile the relay's next run dispatched it, as due: a task makes attempt 2.
    assert delivery_attempt(delivery_id=kept.pk, attempt=2) == "succeeded"

    assert delivery_attempt_kept(delivery=kept) == "skipped"

    assert len(receiver.requests()) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.SUCCEEDED, 2)


def test_a_kept_first_attempt_within_its_lease_is_made(
    settings: Settings, receiver: Receiver
) -> None:
    endpoint, _ = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url=receiver.url, enabled_events=["*"]
    )
    Event.objects.create(
        merchant=endpoint.merchant,
        type="customer.created",
        object_type="customer",
        object_id="c",
        data={},
    )
    _, _, [kept] = relay_run(due=False, keep_at_most=4)

    assert delivery_attempt_kept(delivery=kept) == "succeeded"
    assert delivery_attempt(delivery_id=kept.pk, attempt=2) == "skipped"

    assert len(receiver.requests()) == 1
    assert WebhookDelivery.objects.get().attempts == 1


@contextlib.contextmanager
def trickling(lines: int, every: float) -> Iterator[str]:
    """An endpoint that answers 200 one header line every `every` seconds: each read
    within httpx's timeout, the whole answer far beyond it."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                for _ in range(lines):
                    time.sleep(every)
                    connection.sendall(b"x-slow: 1\r\n")
                connection.sendall(b"content-length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hooks"
    finally:
        server.close()
        thread.join(10)


def test_an_endpoint_trickling_its_answer_is_cut_off_within_the_attempts_lease(
    settings: Settings,
) -> None:
    """httpx's timeouts are per read: without a deadline on the whole POST, an endpoint
    sending a byte now and then holds a worker for as long as it likes, and outlives the
    attempt's lease (3 timeouts and the dispatch lease): the delivery is then made again
    by another task meanwhile."""
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    with trickling(lines=20, every=0.2) as url:  # 4 s in all, 0.2 s a read
        endpoint, _ = webhook_endpoint_create(
            merchant=MerchantFactory.create(), url=url, enabled_events=["*"]
        )
        Event.objects.create(
            merchant=endpoint.merchant,
            type="customer.created",
            object_type="customer",
            object_id="c",
            data={},
        )
        _, _, [kept] = relay_run(due=False, keep_at_most=4)
        started = time.monotonic()

        assert delivery_attempt_kept(delivery=kept) == "failed"

    assert time.monotonic() - started < 3 * 0.5 + 0.5
    attempt = WebhookDeliveryAttempt.objects.get()
    assert attempt.error.startswith("timeout")
    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.PENDING  # retried
