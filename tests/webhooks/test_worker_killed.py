"""A worker killed (SIGKILL) while its POST waits for the receiver: the delivery is made
again by another worker once its attempt's lease runs out, with the same webhook-id."""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from pytest_django.fixtures import Settings

from accounts.services import customer_create
from bench.payments import Process, WorkerOptions, process_env, worker_running
from tests.factories import MerchantFactory
from tests.webhooks.conftest import BROKER_URL
from tests.webhooks.receiver import Receiver
from tests.workers import tasks_through_broker, wait_until
from webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from webhooks.services import webhook_endpoint_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def worker_env(settings: Settings) -> Iterator[dict[str, str]]:
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    settings.WEBHOOK_DISPATCH_LEASE_SECONDS = 1
    with tasks_through_broker(settings, BROKER_URL):
        env = process_env(broker=BROKER_URL, simulator_url="")
        yield {
            **os.environ,
            **{name: value for name, value in env.items() if value is not None},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
            "WEBHOOK_TIMEOUT_SECONDS": "2",
            "WEBHOOK_DISPATCH_LEASE_SECONDS": "1",
        }


@pytest.mark.usefixtures("beat_only")
def test_a_worker_killed_mid_delivery_leaves_it_to_another_with_the_same_id(
    receiver: Receiver, worker_env: dict[str, str], tmp_path: Path
) -> None:
    endpoint, secret = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url=receiver.url, enabled_events=["*"]
    )
    receiver.answer(("sleep", 1.5), 200)  # the first POST hangs until its worker is dead
    options = WorkerOptions(pool="threads", concurrency=2)

    with worker_running(options, worker_env, tmp_path) as first:
        customer_create(merchant=endpoint.merchant, name="Ada")
        wait_until(lambda: len(receiver.requests()) == 1, seconds=30, seen=first.tail)
        _kill(first)

    with worker_running(options, worker_env, tmp_path) as second:
        wait_until(
            lambda: WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.SUCCEEDED).exists(),
            seconds=30,
            seen=second.tail,
        )
    requests = receiver.requests()
    delivery = WebhookDelivery.objects.get()
    assert len(requests) == 2
    assert {request.webhook_id for request in requests} == {delivery.event.public_id}
    assert len(receiver.verified(secret)) == 2
    # The killed attempt left no record; the next one is number 2.
    assert [(a.number, a.status_code) for a in delivery.attempt_log.all()] == [(2, 200)]


def _kill(worker: Process) -> None:
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    # Its PostgreSQL sessions would outlive it until the server notices (the test
    # database could not be dropped): ended now. Only this test's processes use it.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
