"""retry_on_conflict: a transaction PostgreSQL aborted with 40P01 or 40001 is run again."""

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from psycopg import errors as pg_errors
from pytest_django.fixtures import Settings

from accounts.models import Account
from core.db import retry_on_conflict
from ledger import services as ledger_services
from ledger.models import LedgerTransaction
from tests.factories import AccountFactory


def _conflict(cause: type[Exception] = pg_errors.DeadlockDetected) -> OperationalError:
    """What Django raises when PostgreSQL aborts a transaction: psycopg's error as cause."""
    try:
        raise OperationalError("deadlock detected") from cause("deadlock detected")
    except OperationalError as error:
        return error


class Flaky:
    """A transaction body that hits `failures` conflicts before it succeeds."""

    __name__ = "flaky_transaction"  # the decorator logs the name, as functions have one

    def __init__(self, failures: int, error: Callable[[], Exception] = _conflict):
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *, amount: int) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return amount


@pytest.fixture(autouse=True)
def five_attempts(settings: Settings) -> None:
    settings.MONEY_TRANSACTION_RETRIES = 5


@pytest.mark.parametrize("cause", [pg_errors.DeadlockDetected, pg_errors.SerializationFailure])
def test_conflict_is_retried_until_the_function_succeeds(cause: type[Exception]) -> None:
    body = Flaky(failures=2, error=lambda: _conflict(cause))

    assert retry_on_conflict(body)(amount=100) == 100
    assert body.calls == 3


def test_function_that_succeeds_runs_once() -> None:
    body = Flaky(failures=0)

    retry_on_conflict(body)(amount=100)

    assert body.calls == 1


def test_gives_up_after_the_configured_number_of_attempts(settings: Settings) -> None:
    settings.MONEY_TRANSACTION_RETRIES = 3
    body = Flaky(failures=10)

    with pytest.raises(OperationalError) as raised:
        retry_on_conflict(body)(amount=100)

    assert body.calls == 3
    assert isinstance(raised.value.__cause__, pg_errors.DeadlockDetected)


def test_last_allowed_attempt_may_still_succeed(settings: Settings) -> None:
    settings.MONEY_TRANSACTION_RETRIES = 3
    body = Flaky(failures=2)

    assert retry_on_conflict(body)(amount=100) == 100


@pytest.mark.django_db
def test_conflict_inside_an_atomic_block_is_not_retried() -> None:
    body = Flaky(failures=1)

    with pytest.raises(OperationalError), transaction.atomic():
        retry_on_conflict(body)(amount=100)

    assert body.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        lambda: OperationalError("connection refused"),
        lambda: _conflict(pg_errors.LockNotAvailable),
        lambda: IntegrityError("duplicate key"),
        lambda: ValueError("bug"),
    ],
    ids=["operational-without-cause", "lock-not-available", "integrity", "value-error"],
)
def test_other_errors_are_not_retried(error: Callable[[], Exception]) -> None:
    body = Flaky(failures=1, error=error)

    with pytest.raises(type(error())):
        retry_on_conflict(body)(amount=100)

    assert body.calls == 1


def test_wrapped_function_keeps_its_name() -> None:
    def transfer_create() -> None: ...

    assert retry_on_conflict(transfer_create).__name__ == "transfer_create"


@pytest.mark.django_db(transaction=True)
def test_real_deadlock_in_postgresql_is_retried() -> None:
    first, second = AccountFactory.create(), AccountFactory.create()
    both_hold_one_lock = threading.Barrier(2, timeout=10)
    attempts: Counter[str] = Counter()
    errors: list[BaseException] = []

    def lock_both(name: str, order: tuple[Account, Account]) -> None:
        @retry_on_conflict
        def body() -> None:
            attempts[name] += 1
            with transaction.atomic():
                Account.objects.select_for_update().get(pk=order[0].pk)
                if attempts[name] == 1:
                    both_hold_one_lock.wait()  # now each waits for the other: a deadlock
                Account.objects.select_for_update().get(pk=order[1].pk)

        try:
            body()
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=lock_both, args=("forward", (first, second))),
        threading.Thread(target=lock_both, args=("backward", (second, first))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # PostgreSQL aborted one; it ran again


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["adjustment", "reversal"])
def test_adjustments_and_reversals_are_retried_after_a_deadlock(
    operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = AccountFactory.create(currency="USD")
    funding = ledger_services.adjustment_post(account=account, amount=500, reason="funding")
    post = ledger_services.ledger_transaction_post
    attempts = Counter[str]()

    def deadlocks_once(**kwargs: object) -> LedgerTransaction:
        attempts["post"] += 1
        if attempts["post"] == 1:
            raise _conflict()
        return post(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger_services, "ledger_transaction_post", deadlocks_once)
    if operation == "adjustment":
        ledger_services.adjustment_post(account=account, amount=200, reason="goodwill")
        expected_balance = 700
    else:
        ledger_services.ledger_transaction_reverse(ledger_transaction=funding)
        expected_balance = 0

    assert attempts["post"] == 2
    account.refresh_from_db()
    assert account.balance == expected_balance
    assert LedgerTransaction.objects.count() == 2  # the funding and one more, not two
