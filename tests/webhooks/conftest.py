import contextlib
import threading
from collections.abc import Iterator

import pytest
from celery import current_app
from pytest_django.fixtures import Settings

from tests.webhooks.receiver import Receiver, receiving
from tests.workers import embedded_worker
from webhooks.relay import RELAY_TASK

# Redis database 2 keeps this worker's queue apart from every other test's.
BROKER_URL = "redis://127.0.0.1:6379/2"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def quick_schedule(settings: Settings) -> None:
    """Retries 0.3 s apart, four of them: the three days of a schedule in seconds."""
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [0.3, 0.3, 0.3, 0.3]
    settings.WEBHOOK_RETRY_JITTER = 0.1
    settings.WEBHOOK_TIMEOUT_SECONDS = 1.0
    settings.WEBHOOK_DISPATCH_LEASE_SECONDS = 2


@pytest.fixture
def worker(settings: Settings, quick_schedule: None) -> Iterator[None]:
    with embedded_worker(settings, BROKER_URL):
        yield


@pytest.fixture
def beat(worker: None) -> Iterator[None]:
    """What Celery beat does in production: the relay task, sent every 0.2 s, to the
    embedded worker."""
    with _beat():
        yield


@pytest.fixture
def beat_only() -> Iterator[None]:
    """The relay task every 0.2 s, to wherever this process sends tasks."""
    with _beat():
        yield


@contextlib.contextmanager
def _beat() -> Iterator[None]:
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.2):
            with contextlib.suppress(Exception):  # no broker yet: the next tick
                current_app.tasks[RELAY_TASK].apply_async()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)
