"""A payment through the API, a real Celery worker that takes the task from Redis (and
retries it through the broker), and the provider simulator over HTTP."""

import gc
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kombu.pools
import pytest
from celery.contrib.testing.worker import start_worker
from pytest_django.fixtures import Settings

from accounts.api_keys import api_key_create
from config.celery import app
from payments.models import AttemptStatus, Payment, PaymentAttempt, PaymentStatus
from payments.providers.registry import adapters_reset
from simulator.config import SimulatorConfig
from tests.api.helpers import ApiClient
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations
from tests.simulator.servers import running

# Database 9 keeps this worker's queue apart from anyone else's on the same Redis.
BROKER_URL = "redis://127.0.0.1:6379/9"
TIMEOUT_SECONDS = 30

pytestmark = pytest.mark.django_db(transaction=True)


def _drop_broker_connections() -> None:
    kombu.pools.reset()
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@pytest.fixture
def simulator_url(settings: Settings, tmp_path: Any) -> Iterator[str]:
    config = SimulatorConfig(store_path=str(tmp_path / "simulator.sqlite3"))
    with running(config) as url:
        settings.PROVIDER_SIMULATOR_URL = url
        settings.PROVIDER_CIRCUIT_STORAGE = "memory"
        settings.PROVIDER_MAX_NETWORK_RETRIES = 0  # the task's own retries, through Redis
        settings.PAYMENT_TASK_BACKOFF_SECONDS = 0.2
        yield url
    adapters_reset()


@pytest.fixture
def worker(settings: Settings, simulator_url: str) -> Iterator[None]:
    """A solo-pool worker in a thread, consuming from Redis; the app is restored after."""
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    root_logger = logging.getLogger()  # the embedded worker reconfigures it
    saved_logging = (root_logger.level, list(root_logger.handlers))
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.REDIS_URL = settings.CELERY_BROKER_URL = BROKER_URL
    app.conf.update(task_always_eager=False, broker_url=BROKER_URL)
    _drop_broker_connections()
    app.control.purge()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False):
            yield
    finally:
        # The worker's thread kept its database connection between tasks, as workers do
        # (config/celery.py); freed with the thread's locals here, not at exit, so that the
        # test database can be dropped.
        gc.collect()
        app.conf.update(saved)
        _drop_broker_connections()
        root_logger.setLevel(saved_logging[0])
        root_logger.handlers[:] = saved_logging[1]


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not get there within {TIMEOUT_SECONDS}s")
        time.sleep(0.1)


@pytest.mark.usefixtures("worker")
def test_a_worker_charges_once_through_a_provider_error(simulator_url: str) -> None:
    merchant = MerchantFactory.create()
    _, secret = api_key_create(merchant=merchant, name="test")
    wallet = AccountFactory.create(merchant=merchant, currency="USD")
    api = ApiClient(secret)

    ids = {}
    for method in ("pm_card_visa", "pm_card_flaky", "pm_card_declined"):
        response = api.post(
            "payments",
            {
                "amount": 2_500,
                "currency": "USD",
                "destination_account": wallet.public_id,
                "payment_method": method,
            },
        )
        assert response.status_code == 202, response.content
        assert response.json()["status"] == "processing"  # never decided in the request
        ids[method] = response.json()["id"]

    def ended() -> bool:
        return not Payment.objects.filter(
            public_id__in=ids.values(), status=PaymentStatus.PROCESSING
        ).exists()

    _wait_until(ended)
    statuses = dict(
        Payment.objects.filter(public_id__in=ids.values()).values_list("public_id", "status")
    )
    assert statuses == {
        ids["pm_card_visa"]: "succeeded",
        ids["pm_card_flaky"]: "succeeded",
        ids["pm_card_declined"]: "failed",
    }
    flaky = PaymentAttempt.objects.get(payment__public_id=ids["pm_card_flaky"])
    assert (flaky.status, flaky.tries) == (AttemptStatus.SUCCEEDED, 2)  # the same attempt
    charges = httpx.get(f"{simulator_url}/_simulator/charges", trust_env=False).json()["stripe"]
    for method in ("pm_card_visa", "pm_card_flaky"):
        key = PaymentAttempt.objects.get(payment__public_id=ids[method]).public_id
        assert charges[key] == 1, method
    wallet.refresh_from_db()
    assert wallet.balance == 5_000
    assert invariant_violations() == {}
