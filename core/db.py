"""Running a money-moving transaction so that lock conflicts never reach the caller."""

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import OperationalError, connection
from psycopg import errors as pg_errors

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def _is_retryable(error: OperationalError) -> bool:
    return isinstance(error.__cause__, _RETRYABLE)


def retry_on_conflict(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` again when PostgreSQL aborted its transaction with 40P01 or 40001.

    Locks are taken in one fixed order, so these should not happen; this is the safety net
    PostgreSQL's docs ask for (§13.5). Only the outermost transaction can be retried: inside
    a caller's `atomic` block the error propagates so that the caller's transaction rolls back.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        attempts = settings.MONEY_TRANSACTION_RETRIES
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as error:
                if connection.in_atomic_block or not _is_retryable(error) or attempt == attempts:
                    raise
                logger.warning("retrying %r after %s (attempt %d)", func, error, attempt)
                time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter, not crypto
        raise AssertionError("unreachable")

    return wrapper
