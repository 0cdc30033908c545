"""The scheduled hold expiry, run by a real Celery worker that takes the task from Redis."""

import gc
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import kombu.pools
import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone
from pytest_django.fixtures import Settings

from accounts.models import Hold, HoldStatus
from audit.context import ActorType
from audit.models import AuditLog
from config.celery import app
from ledger import tasks
from ledger.holds import hold_create
from tests.factories import AccountFactory

# Database 5 keeps this worker's queue apart from anyone else's on the same Redis.
BROKER_URL = "redis://127.0.0.1:6379/5"
TIMEOUT_SECONDS = 20

pytestmark = pytest.mark.django_db(transaction=True)


def _drop_broker_connections() -> None:
    """Forget pooled connections so the next user of the app connects to its own broker."""
    kombu.pools.reset()
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@pytest.fixture
def worker(settings: Settings) -> Iterator[None]:
    """A solo-pool worker in a thread, consuming from Redis; the app is restored after."""
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    root_logger = logging.getLogger()  # the embedded worker reconfigures it
    saved_logging = (root_logger.level, list(root_logger.handlers))
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.REDIS_URL = settings.CELERY_BROKER_URL = BROKER_URL
    app.conf.update(task_always_eager=False, broker_url=BROKER_URL)
    _drop_broker_connections()
    app.control.purge()  # nothing left over from an earlier run
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


def _expired(hold: Hold) -> bool:
    return Hold.objects.get(pk=hold.pk).status == HoldStatus.EXPIRED


@pytest.fixture
def due_hold() -> Hold:
    account = AccountFactory.create(balance=1_000)
    return hold_create(account=account, amount=300, expires_at=timezone.now() - timedelta(1))


@pytest.mark.usefixtures("worker")
def test_worker_expires_a_due_hold(due_hold: Hold) -> None:
    tasks.expire_holds.delay()

    _wait_until(lambda: _expired(due_hold))
    due_hold.account.refresh_from_db()
    assert due_hold.account.held == 0


@pytest.mark.usefixtures("worker")
def test_worker_leaves_a_hold_that_is_not_due(due_hold: Hold) -> None:
    later = hold_create(
        account=due_hold.account, amount=100, expires_at=timezone.now() + timedelta(hours=1)
    )

    tasks.expire_holds.delay()

    _wait_until(lambda: _expired(due_hold))
    assert Hold.objects.get(pk=later.pk).status == HoldStatus.ACTIVE


@pytest.mark.usefixtures("worker")
def test_expiry_is_audited_as_the_worker_running_the_task(due_hold: Hold) -> None:
    result = tasks.expire_holds.delay()

    _wait_until(lambda: _expired(due_hold))
    row = AuditLog.objects.get(action="hold.expired", object_id=due_hold.public_id)
    assert (row.actor_type, row.actor) == (ActorType.WORKER, "ledger.tasks.expire_holds")
    assert row.request_id == result.id
