"""Fixtures of the refund and payout tests: the provider simulator in-process (tasks
eager, as in the demo) and its admin."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_django.fixtures import Settings

from payments.providers import transport
from payments.providers.registry import adapters_reset


@pytest.fixture
def in_process(settings: Settings, tmp_path: Any) -> Iterator[None]:
    """The in-process simulator with a store of the test's own, settling refunds and
    payouts as soon as they are read again; tasks eager; the janitor's threshold 0."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.PROVIDER_SIMULATOR_URL = ""
    settings.PROVIDER_SIMULATOR_STORE = str(tmp_path / "simulator.sqlite3")
    settings.PROVIDER_SIMULATOR_ASYNC_SECONDS = 0
    settings.PROVIDER_CIRCUIT_STORAGE = "memory"
    settings.PROVIDER_RETRY_BASE_DELAY_SECONDS = 0.01
    settings.PROVIDER_RETRY_MAX_DELAY_SECONDS = 0.05
    settings.PAYMENT_TASK_BACKOFF_SECONDS = 0.01
    settings.PAYMENT_RECOVERY_AFTER_SECONDS = 0
    yield
    adapters_reset()


@pytest.fixture
def simulator_admin(in_process: None) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=transport.IN_PROCESS_BASE_URL,
        transport=httpx.WSGITransport(app=transport.simulator_in_process()),
    ) as admin:
        admin.post("/_simulator/reset").raise_for_status()
        yield admin
