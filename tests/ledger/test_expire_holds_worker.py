"""The scheduled hold expiry, run by a real Celery worker that takes the task from Redis."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings

from accounts.models import Hold, HoldStatus
from audit.context import ActorType
from audit.models import AuditLog
from ledger import tasks
from ledger.holds import hold_create
from tests.factories import AccountFactory
from tests.workers import embedded_worker, wait_until

# Database 5 keeps this worker's queue apart from anyone else's on the same Redis.
BROKER_URL = "redis://127.0.0.1:6379/5"
TIMEOUT_SECONDS = 20

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(settings: Settings) -> Iterator[None]:
    with embedded_worker(settings, BROKER_URL):
        yield


def _expired(hold: Hold) -> bool:
    return Hold.objects.get(pk=hold.pk).status == HoldStatus.EXPIRED


@pytest.fixture
def due_hold() -> Hold:
    account = AccountFactory.create(balance=1_000)
    return hold_create(account=account, amount=300, expires_at=timezone.now() - timedelta(1))


@pytest.mark.usefixtures("worker")
def test_worker_expires_a_due_hold(due_hold: Hold) -> None:
    tasks.expire_holds.delay()

    wait_until(lambda: _expired(due_hold), seconds=TIMEOUT_SECONDS)
    due_hold.account.refresh_from_db()
    assert due_hold.account.held == 0


@pytest.mark.usefixtures("worker")
def test_worker_leaves_a_hold_that_is_not_due(due_hold: Hold) -> None:
    later = hold_create(
        account=due_hold.account, amount=100, expires_at=timezone.now() + timedelta(hours=1)
    )

    tasks.expire_holds.delay()

    wait_until(lambda: _expired(due_hold), seconds=TIMEOUT_SECONDS)
    assert Hold.objects.get(pk=later.pk).status == HoldStatus.ACTIVE


@pytest.mark.usefixtures("worker")
def test_expiry_is_audited_as_the_worker_running_the_task(due_hold: Hold) -> None:
    result = tasks.expire_holds.delay()

    wait_until(lambda: _expired(due_hold), seconds=TIMEOUT_SECONDS)
    row = AuditLog.objects.get(action="hold.expired", object_id=due_hold.public_id)
    assert (row.actor_type, row.actor) == (ActorType.WORKER, "ledger.tasks.expire_holds")
    assert row.request_id == result.id
