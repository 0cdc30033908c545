"""Celery beat's schedule run in-process, for the demo and small installs that run no beat
(`manage.py run_schedule`): every entry of settings.CELERY_BEAT_SCHEDULE, when due, run
here with its task's `apply()` (in this process, as a worker would run it; what the task
sends on is eager or goes to the broker, as configured).

core knows the schedule from the settings only: each task is looked up by its name in the
Celery app's registry, never imported, so this module stays below every app (ADR 0012).
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from celery.schedules import BaseSchedule, maybe_schedule
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)

# The longest the loop sleeps between looks at the schedule: a stop is seen at once
# (the event), a new entry due within this.
MAX_SLEEP_SECONDS = 60.0


@dataclass
class ScheduleEntry:
    """One entry of the schedule: a task by name, its arguments, when it is due, and
    when it last ran (None: never; due at once)."""

    name: str
    task: str
    schedule: BaseSchedule
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    last_run_at: datetime.datetime | None = None

    def seconds_until_due(self) -> float:
        if self.last_run_at is None:
            return 0.0
        due, next_check = self.schedule.is_due(self.last_run_at)
        return 0.0 if due else max(float(next_check), 0.0)


def _schedule_of(name: str, value: Any) -> BaseSchedule:
    schedule = maybe_schedule(value, app=current_app)  # a number or timedelta: every so long
    if not isinstance(schedule, BaseSchedule):
        raise ImproperlyConfigured(f"CELERY_BEAT_SCHEDULE[{name!r}]: no schedule: {value!r}")
    return schedule


def schedule_entries(schedule: Mapping[str, Mapping[str, Any]]) -> list[ScheduleEntry]:
    """The entries of a CELERY_BEAT_SCHEDULE-shaped mapping (`schedule` a timedelta, a
    number of seconds, or a celery schedule such as a crontab), in its order. The apps'
    tasks are loaded first (a worker or beat does so on start; a management command
    does not), so that each is found by its name."""
    autodiscover_modules("tasks")  # each installed app's tasks.py, as Celery's autodiscovery
    return [
        ScheduleEntry(
            name=name,
            task=str(entry["task"]),
            schedule=_schedule_of(name, entry["schedule"]),
            args=tuple(entry.get("args", ())),
            kwargs=dict(entry.get("kwargs", {})),
        )
        for name, entry in schedule.items()
    ]


def _connections_refresh() -> None:
    """A long-running process: drop the connections that broke or aged past their limit
    between runs, as Django does between requests and our workers between tasks; inside
    a caller's transaction (a test's) they are the caller's to keep."""
    if not any(connection.in_atomic_block for connection in connections.all()):
        close_old_connections()


def schedule_entry_run(entry: ScheduleEntry) -> bool:
    """Run one entry now, in this process; its exception (or an unknown task) is logged,
    never raised. Returns whether it succeeded."""
    entry.last_run_at = timezone.now()
    _connections_refresh()
    try:
        result = current_app.tasks[entry.task].apply(args=entry.args, kwargs=entry.kwargs)
        value = result.get(propagate=True)
    except Exception:  # one entry's trouble must not stop the others
        logger.exception("scheduled %s (%s) failed", entry.name, entry.task)
        return False
    finally:
        _connections_refresh()
    logger.info("scheduled %s (%s) ran: %r", entry.name, entry.task, value)
    return True


def schedule_run(entries: list[ScheduleEntry], *, stop: threading.Event, once: bool = False) -> int:
    """Run each entry when it is due until `stop` is set (between two entries' runs: an
    entry under way finishes first); `once`: every entry once, in order, then return.
    Returns how many runs failed."""
    failures = 0
    if once:
        for entry in entries:
            if stop.is_set():
                break
            failures += not schedule_entry_run(entry)
        return failures
    while not stop.is_set():
        for entry in entries:
            if stop.is_set():
                break
            if entry.seconds_until_due() == 0:
                failures += not schedule_entry_run(entry)
        wait = min([MAX_SLEEP_SECONDS, *(entry.seconds_until_due() for entry in entries)])
        stop.wait(wait)
    return failures
