"""core.postgresql: the health check that asks the socket instead of the server."""

import time
from collections.abc import Iterator

import pytest
from django.db import DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other() -> Iterator[BaseDatabaseWrapper]:
    """A second connection to the test database, with its own backend process."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def _backend_pid(wrapper: BaseDatabaseWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_an_idle_connection_is_usable(other: BaseDatabaseWrapper) -> None:
    _backend_pid(other)
    assert other.is_usable()


def test_a_connection_the_server_closed_is_not_usable_and_is_replaced(
    other: BaseDatabaseWrapper,
) -> None:
    pid = _backend_pid(other)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while other.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not other.is_usable()

    # What Django does before a request's first query when the check fails.
    other.health_check_enabled = True  # type: ignore[attr-defined]
    other.health_check_done = False  # type: ignore[attr-defined]
    other.close_if_health_check_failed()
    assert other.connection is None
    assert _backend_pid(other) != pid


def test_a_failed_transaction_makes_the_connection_unusable(other: BaseDatabaseWrapper) -> None:
    other.set_autocommit(False)
    with pytest.raises(DatabaseError), other.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")
    assert not other.is_usable()
    other.rollback()
    other.set_autocommit(True)
    assert other.is_usable()


def test_the_check_sends_nothing_to_the_server(
    other: BaseDatabaseWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    _backend_pid(other)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the health check ran a query")

    monkeypatch.setattr(other.connection, "execute", refuse)
    monkeypatch.setattr(other.connection, "cursor", refuse)
    assert other.is_usable()
