"""The statements the API's hottest requests send to PostgreSQL, counted: a change that adds
a round trip to a balance read or a transfer fails here, and says which statements it sent
(docs/benchmarks.md, ADR 0007). Counted inside the test's transaction, where the idempotency
key's own transaction is a savepoint; BEGIN and COMMIT are not statements Django counts."""

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from core.db import session_current
from tests.api.helpers import ApiClient


def _statements(run: Callable[[], object]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = run()
    assert response.status_code in (200, 201, 202), response.content  # type: ignore[attr-defined]
    return [query["sql"].split(" (")[0][:60] for query in captured.captured_queries]


def test_a_balance_read_is_one_statement(
    api: ApiClient, funded_account: Callable[..., Account]
) -> None:
    account = funded_account(balance=500)
    # Warm: the worker caches the API key, whose last_used_at is written once.
    api.get(f"accounts/{account.public_id}/balance")
    statements = _statements(lambda: api.get(f"accounts/{account.public_id}/balance"))
    assert len(statements) == 1, statements  # the balance


def test_the_first_request_of_a_key_reads_it(
    api: ApiClient, funded_account: Callable[..., Account]
) -> None:
    account = funded_account(balance=500)
    statements = _statements(lambda: api.get(f"accounts/{account.public_id}/balance"))
    # The API key, its last_used_at, the balance.
    assert len(statements) == 3, statements


# Source and destination (one query); [the idempotency key claimed; its
# transaction]; the transfer's block (a savepoint here); the ledger transaction; its audit
# row, the transfer, its event and audit row in one statement; the accounts locked;
# balances; entries; the savepoint released; [the idempotency key completed; its end].
@pytest.mark.parametrize(("idempotency", "expected"), [(False, 8), (True, 12)])
def test_a_transfer_is_a_fixed_number_of_statements(
    api: ApiClient, funded_account: Callable[..., Account], idempotency: bool, expected: int
) -> None:
    source, destination = funded_account(balance=500), funded_account()
    body = {
        "source_account": source.public_id,
        "destination_account": destination.public_id,
        "amount": 5,
        "currency": "USD",
    }
    api.get(f"accounts/{source.public_id}/balance")  # warm: the API key is cached
    session_current()  # warm: a key's holder, the connection's session, is read once
    headers = {"HTTP_IDEMPOTENCY_KEY": "count-1"} if idempotency else {}
    statements = _statements(lambda: api.post("transfers", body, **headers))
    assert len(statements) == expected, statements


# The destination account; [the idempotency key claimed; its transaction]; the payment's
# block (a savepoint here); the payment; its attempt, event and audit row in one
# statement; the savepoint released; [the idempotency key completed; its end]. The 202 is
# built from what was written, not read back.
@pytest.mark.parametrize(("idempotency", "expected"), [(False, 5), (True, 9)])
def test_a_payment_is_a_fixed_number_of_statements(
    api: ApiClient, funded_account: Callable[..., Account], idempotency: bool, expected: int
) -> None:
    account = funded_account()
    body = {
        "amount": 5,
        "currency": "USD",
        "destination_account": account.public_id,
        "payment_method": "pm_card_visa",
    }
    api.get(f"accounts/{account.public_id}/balance")  # warm: the API key is cached
    session_current()  # warm: a key's holder, the connection's session, is read once
    headers = {"HTTP_IDEMPOTENCY_KEY": "count-1"} if idempotency else {}
    statements = _statements(lambda: api.post("payments", body, **headers))
    assert len(statements) == expected, statements
