"""`manage.py run_schedule` (core/schedule.py): Celery beat's schedule run in-process for
installs without beat, such as the demo. `--once` runs every entry, an entry's failure
stops none of the others; the loop runs each entry when it is due; SIGTERM stops it."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from accounts.models import Account
from accounts.services import merchant_default_provider_set
from core.schedule import schedule_entries, schedule_run
from payments.models import Payout, PayoutStatus
from payments.payouts import payout_create
from tests.factories import AccountFactory, MerchantFactory
from tests.payments.conftest import in_process  # noqa: F401 - the fixture, used by name

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

RAN = "scheduled %s (%s) ran: %r"
FAILED = "scheduled %s (%s) failed"


def _ran(caplog: pytest.LogCaptureFixture, message: str = RAN) -> list[str]:
    """The entries the log says ran (or failed), in order."""
    return [
        str(r.args[0]) for r in caplog.records if r.msg == message and isinstance(r.args, tuple)
    ]


def _pending_payout(capture: Any) -> Payout:
    """A payout the provider has accepted and settles when next asked (the janitor)."""
    merchant = merchant_default_provider_set(merchant=MerchantFactory.create(), provider="stripe")
    wallet: Account = AccountFactory.create(merchant=merchant, currency="USD", balance=10_000)
    with capture(execute=True):
        payout = payout_create(
            merchant=merchant, source=wallet, amount=2_500, currency="USD", destination="ba_ok"
        )
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PENDING
    return payout


def test_once_runs_every_entry_of_the_settings_schedule(
    settings: Settings, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    payout = _pending_payout(django_capture_on_commit_callbacks)
    out = StringIO()
    with caplog.at_level(logging.INFO, logger="core.schedule"):
        call_command("run_schedule", "--once", stdout=out)
    assert _ran(caplog) == list(settings.CELERY_BEAT_SCHEDULE)
    assert "Ran every entry once; 0 runs failed." in out.getvalue()
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID  # the janitor's entry asked the provider


def test_a_failing_entry_stops_none_of_the_others(
    settings: Settings, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    payout = _pending_payout(django_capture_on_commit_callbacks)
    settings.CELERY_BEAT_SCHEDULE = {
        "unknown": {"task": "payments.tasks.no_such_task", "schedule": 30},
        # A real task that raises: its attempt does not exist.
        "raising": {"task": "payments.tasks.run_attempt", "schedule": 30, "args": (0,)},
        "janitor": {"task": "payments.tasks.recover_attempts", "schedule": timedelta(seconds=30)},
    }
    out = StringIO()
    with caplog.at_level(logging.INFO, logger="core.schedule"):
        call_command("run_schedule", "--once", stdout=out)
    assert _ran(caplog, FAILED) == ["unknown", "raising"]
    assert _ran(caplog) == ["janitor"]
    assert "2 runs failed" in out.getvalue()
    [failure] = [
        r
        for r in caplog.records
        if r.msg == FAILED and r.getMessage().startswith("scheduled raising ")
    ]
    assert failure.exc_info is not None and "DoesNotExist" in repr(failure.exc_info[1])
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID


def test_the_loop_runs_each_entry_when_it_is_due(caplog: pytest.LogCaptureFixture) -> None:
    entries = schedule_entries(
        {
            "often": {"task": "core.tasks.purge_idempotency_keys", "schedule": 0.1},
            "hourly": {"task": "core.tasks.purge_idempotency_keys", "schedule": 3600},
        }
    )
    stop = threading.Event()
    threading.Timer(0.75, stop.set).start()
    with caplog.at_level(logging.INFO, logger="core.schedule"):
        assert schedule_run(entries, stop=stop) == 0
    runs = _ran(caplog)
    assert runs.count("hourly") == 1  # at the start, then not due again
    assert 4 <= runs.count("often") <= 9  # every 0.1 s for 0.75 s: due, not busy-looping


def test_sigterm_stops_it_cleanly(settings: Settings) -> None:
    settings.CELERY_BEAT_SCHEDULE = {
        "often": {"task": "core.tasks.purge_idempotency_keys", "schedule": 0.1},
    }
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    out = StringIO()
    call_command("run_schedule", stdout=out)  # returns: the signal stopped it
    assert "Stopped; 0 runs failed." in out.getvalue()
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler restored
