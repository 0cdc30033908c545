from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db.backends.postgresql.operations import DatabaseOperations

import core.cache


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "core.postgresql":
        raise pytest.UsageError(
            f"the test suite runs on PostgreSQL only (DATABASE_URL gives {engine}); "
            "run it with bin/test, which starts one"
        )
    # Tests fire API requests faster than any client should; the rate limits have their
    # own tests (tests/api/test_operations.py, tests/api/test_edge.py), which set low ones.
    settings.API_RATE_LIMIT = "1000000/second"
    settings.API_ANONYMOUS_RATE_LIMIT = "1000000/second"


@pytest.fixture(scope="session", autouse=True)
def flush_past_the_append_only_guards() -> Iterator[None]:
    """Transactional tests end with Django's flush, a TRUNCATE that the append-only tables
    refuse. The test database's superuser flushes with triggers off, in replica mode, for
    that one transaction; nothing else in the suite bypasses them."""
    original = DatabaseOperations.sql_flush

    def sql_flush(self: DatabaseOperations, *args: Any, **kwargs: Any) -> list[str]:
        statements = original(self, *args, **kwargs)
        return ["SET LOCAL session_replication_role = replica", *statements] if statements else []

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign,assignment]
    yield
    DatabaseOperations.sql_flush = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_redis_back_off_left_over() -> Iterator[None]:
    """A test that made Redis fail starts core.cache's back-off; the next tests ask Redis."""
    yield
    core.cache._skip_until = 0.0
