"""The circuit breaker per provider and routing: failed calls open it, an open circuit makes
no call and sends new payments to the other provider, a trial after the reset time closes
it; declines are answers and never open it; operators see and force it."""

from __future__ import annotations

import time
from io import StringIO
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command

from payments.providers.base import DeclineClass, OperationKind, ResultStatus
from payments.providers.circuit import REDIS_NAMESPACE, circuit_force, circuit_status
from payments.providers.registry import adapter_get, adapters_reset, provider_route
from tests.payments.providers.conftest import Simulator
from tests.payments.providers.test_adapters import authorize, new_key


@pytest.fixture(autouse=True)
def _small_breaker(settings: Any) -> None:
    settings.PROVIDER_CIRCUIT_FAILURES = 2
    settings.PROVIDER_CIRCUIT_RESET_SECONDS = 0.8
    settings.PROVIDER_MAX_NETWORK_RETRIES = 0


def test_failures_open_the_circuit_and_new_payments_fail_over(
    provider: str, simulator: Simulator
) -> None:
    adapter = adapter_get(provider)
    other = "adyen" if provider == "stripe" else "stripe"
    simulator.faults(unavailable=10)
    for _ in range(2):
        assert authorize(adapter).failure_code == "provider_unavailable"
    status = circuit_status(provider)
    assert (status.state, status.failures) == ("open", 2)
    assert status.open_until is not None

    refused = authorize(adapter)
    assert (refused.status, refused.decline_class, refused.failure_code) == (
        ResultStatus.ERROR,
        DeclineClass.TEMPORARY,
        "circuit_open",
    )
    assert refused.retry_after is not None and 0 < refused.retry_after <= 0.8
    assert simulator.faults_now()["unavailable"] == 8  # no call was made
    assert provider_route(preferred=provider) == (other, f"failover: {provider} circuit open")
    assert provider_route(preferred=other) == (other, "default")

    # After the reset time a trial call goes through; its success closes the circuit.
    simulator.faults(unavailable=0)
    time.sleep(0.9)
    assert provider_route(preferred=provider) == (provider, "default")
    assert authorize(adapter).status == ResultStatus.SUCCEEDED
    assert circuit_status(provider).state == "closed"


def test_a_failed_trial_opens_the_circuit_again(provider: str, simulator: Simulator) -> None:
    adapter = adapter_get(provider)
    simulator.faults(unavailable=10)
    authorize(adapter)
    authorize(adapter)
    time.sleep(0.9)
    assert authorize(adapter).failure_code == "provider_unavailable"  # the trial
    assert circuit_status(provider).state == "open"
    assert authorize(adapter).failure_code == "circuit_open"


def test_declines_and_other_answers_do_not_count(provider: str, simulator: Simulator) -> None:
    adapter = adapter_get(provider)
    for _ in range(3):
        assert authorize(adapter, "pm_card_declined").status == ResultStatus.DECLINED
    for _ in range(3):
        found = adapter.retrieve(kind=OperationKind.AUTHORIZE, idempotency_key=new_key())
        assert found.failure_code == "not_found"
    key = new_key()
    authorize(adapter, key=key)
    for _ in range(3):
        assert authorize(adapter, key=key, capture=False).failure_code == "idempotency_error"
    assert (circuit_status(provider).state, circuit_status(provider).failures) == ("closed", 0)


def test_a_success_resets_the_count(provider: str, simulator: Simulator) -> None:
    adapter = adapter_get(provider)
    simulator.faults(unavailable=1)
    assert authorize(adapter).failure_code == "provider_unavailable"
    assert circuit_status(provider).failures == 1
    assert authorize(adapter).status == ResultStatus.SUCCEEDED
    assert circuit_status(provider).failures == 0


def test_with_every_circuit_open_a_payment_stays_with_its_provider() -> None:
    circuit_force("stripe", state="open")
    circuit_force("adyen", state="open")
    assert provider_route(preferred="adyen") == (
        "adyen",
        "default: every provider's circuit is open",
    )


def test_an_unknown_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown provider 'paypal'"):
        provider_route(preferred="paypal")
    with pytest.raises(ValueError, match="unknown provider 'paypal'"):
        adapter_get("paypal")


def test_operators_see_and_force_a_circuit() -> None:
    out = StringIO()
    call_command(
        "provider_circuit", "--provider", "stripe", "--open", stdout=out, stderr=StringIO()
    )
    assert out.getvalue().startswith("stripe: open, 0 failed calls in a row, a trial call allowed")
    assert provider_route(preferred="stripe") == ("adyen", "failover: stripe circuit open")

    out = StringIO()
    call_command(
        "provider_circuit", "--provider", "stripe", "--close", stdout=out, stderr=StringIO()
    )
    assert out.getvalue() == "stripe: closed, 0 failed calls in a row\n"
    assert provider_route(preferred="stripe") == ("stripe", "default")

    out, err = StringIO(), StringIO()
    call_command("provider_circuit", "--provider", "adyen", stdout=out, stderr=err)
    assert out.getvalue() == "adyen: closed, 0 failed calls in a row\n"
    assert "this process's breaker only" in err.getvalue()


@pytest.fixture
def redis_circuits(settings: Any) -> Any:
    """The breakers' state in Redis (REDIS_URL), as in production; cleaned up after."""
    settings.PROVIDER_CIRCUIT_STORAGE = "redis"
    settings.PROVIDER_CIRCUIT_RESET_SECONDS = 30  # Redis keeps the opening time in whole seconds
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    yield client
    for key in client.scan_iter(f"{REDIS_NAMESPACE}:*"):
        client.delete(key)


def test_in_redis_every_process_sees_the_same_circuit(redis_circuits: Any) -> None:
    circuit_force("stripe", state="open")
    adapters_reset()  # as another process would start: nothing of this one's breakers kept
    status = circuit_status("stripe")
    assert status.state == "open" and status.open_until is not None
    assert provider_route(preferred="stripe") == ("adyen", "failover: stripe circuit open")
    assert redis_circuits.get(f"{REDIS_NAMESPACE}:stripe:pybreaker:state") == b"open"
    circuit_force("stripe", state="closed")
    adapters_reset()
    assert circuit_status("stripe").state == "closed"


def test_without_redis_the_circuit_is_taken_as_closed(settings: Any) -> None:
    settings.PROVIDER_CIRCUIT_STORAGE = "redis"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert circuit_status("stripe").state == "closed"
    assert provider_route(preferred="stripe") == ("stripe", "default")
