"""A payment through the API, a real Celery worker that takes the task from Redis (and
retries it through the broker), and the provider simulator over HTTP."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_django.fixtures import Settings

from accounts.api_keys import api_key_create
from payments.models import AttemptStatus, Payment, PaymentAttempt, PaymentStatus
from payments.providers.registry import adapters_reset
from simulator.config import SimulatorConfig
from tests.api.helpers import ApiClient
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations
from tests.simulator.servers import running
from tests.workers import embedded_worker, wait_until

# Database 9 keeps this worker's queue apart from anyone else's on the same Redis.
BROKER_URL = "redis://127.0.0.1:6379/9"
TIMEOUT_SECONDS = 30

pytestmark = pytest.mark.django_db(transaction=True)


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
    with embedded_worker(settings, BROKER_URL):
        yield


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

    wait_until(ended, seconds=TIMEOUT_SECONDS)
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
