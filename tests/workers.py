"""Celery workers for tests: tasks sent to a real Redis broker instead of run eagerly, a
worker in a thread consuming them, and bounded waits for what the worker does."""

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import kombu.pools
import pytest
from celery.contrib.testing.worker import start_worker
from pytest_django.fixtures import Settings

from config.celery import app


def broker_connections_drop() -> None:
    """Forget pooled connections so the next use of the app connects to its own broker."""
    kombu.pools.reset()
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@contextlib.contextmanager
def tasks_through_broker(settings: Settings, broker_url: str) -> Iterator[None]:
    """Tasks sent by this process go to `broker_url` (not run eagerly); the app is restored
    after."""
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.REDIS_URL = settings.CELERY_BROKER_URL = broker_url
    app.conf.update(task_always_eager=False, broker_url=broker_url)
    broker_connections_drop()
    try:
        yield
    finally:
        app.conf.update(saved)
        broker_connections_drop()


@contextlib.contextmanager
def embedded_worker(settings: Settings, broker_url: str) -> Iterator[None]:
    """A solo-pool worker in a thread, consuming from `broker_url`, whose queue is purged
    first (nothing left over from an earlier run)."""
    root_logger = logging.getLogger()  # the embedded worker reconfigures it
    saved_logging = (root_logger.level, list(root_logger.handlers))
    with tasks_through_broker(settings, broker_url):
        app.control.purge()
        try:
            with start_worker(app, pool="solo", perform_ping_check=False):
                yield
        finally:
            # The worker's thread kept its database connection between tasks, as workers
            # do (config/celery.py); freed with the thread's locals here, not at exit, so
            # that the test database can be dropped.
            gc.collect()
            root_logger.setLevel(saved_logging[0])
            root_logger.handlers[:] = saved_logging[1]


def wait_until(
    condition: Callable[[], Any],
    *,
    seconds: float,
    what: str = "the worker to get there",
    seen: Callable[[], str] | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `condition` until it holds; fail the test after `seconds`, saying what was
    awaited and, when given, what was seen instead."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            detail = f"; seen:\n{seen()}" if seen is not None else ""
            pytest.fail(f"waited {seconds:g} s for {what}{detail}")
        time.sleep(interval)
