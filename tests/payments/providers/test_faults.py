"""The simulator's fault switches against both adapters: what is retried inside a call (with
the same idempotency key: never a second charge), what comes back as an error to retry
later, and what is an unknown outcome, never a success."""

from __future__ import annotations

import time
from typing import Any

import pytest

from payments.providers.base import DeclineClass, ResultStatus
from payments.providers.registry import adapter_get
from tests.payments.providers.conftest import Simulator
from tests.payments.providers.test_adapters import authorize, new_key


def test_unavailable_once_is_retried_with_one_charge(adapter: Any, simulator: Simulator) -> None:
    simulator.faults(unavailable=1)
    key = new_key()
    assert authorize(adapter, key=key).status == ResultStatus.SUCCEEDED
    assert simulator.faults_now()["unavailable"] == 0
    assert simulator.charges(adapter.name, key) == 1


def test_unavailable_past_the_retries_is_a_temporary_error(
    adapter: Any, simulator: Simulator
) -> None:
    simulator.faults(unavailable=5)
    key = new_key()
    result = authorize(adapter, key=key)
    assert (result.status, result.decline_class, result.failure_code, result.http_status) == (
        ResultStatus.ERROR,
        DeclineClass.TEMPORARY,
        "provider_unavailable",
        503,
    )
    assert simulator.faults_now()["unavailable"] == 2  # the call and its 2 retries
    assert simulator.charges(adapter.name, key) == 0


def test_rate_limited_waits_for_retry_after(
    adapter: Any, simulator: Simulator, settings: Any
) -> None:
    settings.PROVIDER_RETRY_MAX_DELAY_SECONDS = 2.0  # new adapters, made from it
    simulator.faults(rate_limited=1, retry_after=1)
    key = new_key()
    started = time.monotonic()
    result = authorize(adapter_get(adapter.name), key=key)
    assert result.status == ResultStatus.SUCCEEDED
    assert time.monotonic() - started >= 1.0  # the provider's Retry-After, not our backoff
    assert simulator.charges(adapter.name, key) == 1


def test_a_retry_after_longer_than_a_call_waits_is_handed_to_the_task(
    adapter: Any, simulator: Simulator
) -> None:
    simulator.faults(rate_limited=5, retry_after=30)
    result = authorize(adapter)
    assert (result.status, result.failure_code, result.retry_after, result.http_status) == (
        ResultStatus.ERROR,
        "rate_limited",
        30.0,
        429,
    )
    assert simulator.faults_now()["rate_limited"] == 4  # asked once, not retried


def test_a_reset_after_commit_is_retried_and_replayed(adapter: Any, simulator: Simulator) -> None:
    simulator.faults(drop_after_commit=1)
    key = new_key()
    result = authorize(adapter, key=key)
    assert result.status == ResultStatus.SUCCEEDED
    assert simulator.charges(adapter.name, key) == 1


def test_resets_on_every_try_are_unknown_then_the_stored_outcome(
    adapter: Any, simulator: Simulator
) -> None:
    simulator.faults(drop_after_commit=3)  # the call and its 2 retries
    key = new_key()
    lost = authorize(adapter, key=key)
    assert (lost.status, lost.decline_class, lost.failure_code) == (
        ResultStatus.UNKNOWN,
        DeclineClass.TEMPORARY,
        "connection_error",
    )
    again = authorize(adapter, key=key)
    assert (again.status, again.amount) == (ResultStatus.SUCCEEDED, 1000)
    assert simulator.charges(adapter.name, key) == 1


def test_invalid_json_is_unknown_then_the_stored_outcome(
    adapter: Any, simulator: Simulator
) -> None:
    simulator.faults(invalid_json=1)
    key = new_key()
    garbled = authorize(adapter, key=key)
    assert (garbled.status, garbled.failure_code) == (ResultStatus.UNKNOWN, "invalid_response")
    assert authorize(adapter, key=key).status == ResultStatus.SUCCEEDED
    assert simulator.charges(adapter.name, key) == 1


@pytest.fixture
def http_simulator(simulator_url: str, settings: Any) -> Any:
    """The simulator over HTTP only: the in-process transport has no clock to time out by
    (its timeouts are the ones the simulator raises, pm_card_timeout's)."""
    import httpx

    settings.PROVIDER_SIMULATOR_URL = simulator_url
    with httpx.Client(base_url=simulator_url, trust_env=False, timeout=5) as admin:
        admin.post("/_simulator/reset").raise_for_status()
        yield Simulator("http", admin)
        admin.post("/_simulator/reset").raise_for_status()


@pytest.mark.parametrize("provider_name", ["stripe", "adyen"])
def test_a_slow_provider_is_unknown_after_the_read_timeout(
    http_simulator: Simulator, provider_name: str
) -> None:
    http_simulator.faults(latency_ms=1500)  # the read timeout is 0.5 s
    key = new_key()
    adapter = adapter_get(provider_name)
    slow = authorize(adapter, key=key)
    assert (slow.status, slow.failure_code) == (ResultStatus.UNKNOWN, "timeout")
    http_simulator.faults(latency_ms=0)
    time.sleep(1.2)  # the simulator finishes the call it was slow to answer
    assert authorize(adapter, key=key).status == ResultStatus.SUCCEEDED
    assert http_simulator.charges(provider_name, key) == 1
