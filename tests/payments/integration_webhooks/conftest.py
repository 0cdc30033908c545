"""What the inbound webhook tests with a real worker share: the provider simulator (its
own process, over HTTP) sending its signed webhooks to a live server of ours
(pytest-django's, in this process), which stores them and sends their tasks to Redis; a
real Celery worker process processes them. No janitor runs: what the provider finishes
later (`pm_card_async`, refunds, payouts) finishes only through its webhook here.

A module's broker (and circuit state) is Redis database `webhook_broker_url`: 12 unless the
module overrides it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pytest_django.fixtures import Settings

from payments.models import ProviderWebhook, ProviderWebhookStatus
from payments.providers.circuit import circuit_force
from payments.providers.registry import PROVIDERS
from tests.payments.integration.conftest import (
    WAIT_SECONDS,
    SimulatorProcess,
    Worker,
    Workers,
    merchant_of,
    simulator_started,
)
from tests.workers import tasks_through_broker, wait_until

__all__ = ["merchant_of"]  # a fixture of tests/payments/integration's, used here
MAX_TRIES = 3  # a parked webhook's tries before it is dead


@pytest.fixture(scope="module")
def webhook_broker_url() -> str:
    return "redis://127.0.0.1:6379/12"


@pytest.fixture(scope="module")
def webhook_simulator(
    live_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimulatorProcess]:
    with simulator_started(tmp_path_factory.mktemp("simulator"), live_server.url) as started:
        yield started


@pytest.fixture(scope="module")
def webhook_worker(
    webhook_simulator: SimulatorProcess,
    webhook_broker_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    django_db_setup: None,
) -> Iterator[Worker]:
    client = redis.Redis.from_url(webhook_broker_url)
    try:
        client.flushdb()
    finally:
        client.close()
    started = Workers(webhook_simulator, tmp_path_factory.mktemp("worker"), webhook_broker_url)
    try:
        yield started.start(
            PROVIDER_WEBHOOK_MAX_TRIES=str(MAX_TRIES),
            PROVIDER_WEBHOOK_RETRY_SECONDS="0.1",
        )
    finally:
        started.stop_all()


@pytest.fixture(autouse=True)
def wired(
    settings: Settings,
    webhook_simulator: SimulatorProcess,
    webhook_worker: Worker,
    webhook_broker_url: str,
) -> Iterator[None]:
    """This process (and its live server's thread) sends tasks to the module's Redis
    database and talks to the same simulator as the worker."""
    settings.PROVIDER_SIMULATOR_URL = webhook_simulator.url
    settings.PROVIDER_CIRCUIT_STORAGE = "redis"
    with tasks_through_broker(settings, webhook_broker_url):
        webhook_simulator.reset()
        try:
            yield
        finally:
            webhook_simulator.reset()
            for provider in PROVIDERS:
                circuit_force(provider, state="closed")


def sent_webhooks(simulator: SimulatorProcess) -> list[dict[str, Any]]:
    """The webhooks the simulator has sent (or is trying to)."""
    return list(simulator.admin.get("/_simulator/webhooks").json()["data"])


def webhook_processed(**lookup: Any) -> ProviderWebhook:
    """The one stored webhook matching `lookup`, once processed: the worker marks it so
    just after the transaction that applied the provider's state, so a test that saw the
    object change waits for the mark."""
    webhooks = ProviderWebhook.objects.filter(**lookup)
    wait_until(
        webhooks.filter(status=ProviderWebhookStatus.PROCESSED).exists,
        seconds=WAIT_SECONDS,
        what=f"the webhook {lookup} processed",
        seen=lambda: str(list(webhooks.values_list("status", "last_error"))),
    )
    return webhooks.get()


def webhook_statuses_at_simulator(simulator: SimulatorProcess, key: str, value: str) -> list[str]:
    """The statuses of the simulator's webhooks whose `key` is `value`, once none is still
    being sent: the simulator marks one `sent` when our answer reaches it, which may be
    after our worker has processed it."""

    def statuses() -> list[str]:
        return [w["status"] for w in sent_webhooks(simulator) if w[key] == value]

    wait_until(
        lambda: "pending" not in statuses(),
        seconds=WAIT_SECONDS,
        what=f"the simulator's webhooks of {key} {value} answered",
        seen=lambda: str(statuses()),
    )
    return statuses()
