"""The simulator in-process (its WSGI application behind httpx.WSGITransport, as the
adapters use it in the demo), on a store file of the test's own."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator import InProcessApp, SimulatorApp, SimulatorConfig
from simulator.config import DEFAULT_ADYEN_API_KEY, DEFAULT_STRIPE_API_KEY

ASYNC_SECONDS = 0.3


@pytest.fixture
def config(tmp_path: Path) -> SimulatorConfig:
    return SimulatorConfig(
        store_path=str(tmp_path / "simulator.sqlite3"), async_seconds=ASYNC_SECONDS
    )


@pytest.fixture
def app(config: SimulatorConfig) -> Iterator[SimulatorApp]:
    app = SimulatorApp(config)
    yield app
    app.store.close()


def client(app: SimulatorApp, **headers: str) -> httpx.Client:
    return httpx.Client(
        transport=httpx.WSGITransport(app=InProcessApp(app)),
        base_url="http://simulator",
        headers=headers,
    )


@pytest.fixture
def stripe_client(app: SimulatorApp) -> httpx.Client:
    return client(app, Authorization=f"Bearer {DEFAULT_STRIPE_API_KEY}")


@pytest.fixture
def adyen_client(app: SimulatorApp) -> httpx.Client:
    return client(app, **{"X-API-Key": DEFAULT_ADYEN_API_KEY})


@pytest.fixture
def admin(app: SimulatorApp) -> httpx.Client:
    return client(app)
