"""The statements the API's hottest requests send to PostgreSQL, counted: a change that adds
a round trip to a balance read or a transfer fails here, and says which statements it sent
(docs/benchmarks.md, ADR 0007). Counted inside the test's transaction, where the idempotency
key's own transaction is a savepoint; BEGIN and COMMIT are not statements Django counts."""

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from tests.api.helpers import ApiClient


def _statements(run: Callable[[], object]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = run()
    assert response.status_code in (200, 201), response.content  # type: ignore[attr-defined]
    return [query["sql"].split(" (")[0][:60] for query in captured.captured_queries]


def test_a_balance_read_is_two_statements(
    api: ApiClient, funded_account: Callable[..., Account]
) -> None:
    account = funded_account(balance=500)
    api.get(f"accounts/{account.public_id}/balance")  # warm: last_used_at is written once
    statements = _statements(lambda: api.get(f"accounts/{account.public_id}/balance"))
    assert len(statements) == 2, statements  # the API key, the balance


# The API key; source and destination (one query); [the idempotency key claimed; its
# transaction]; the transfer's block (a savepoint here); the ledger transaction; its audit
# row, the transfer, its event and audit row in one statement; the accounts locked;
# balances; entries; the savepoint released; [the idempotency key completed; its end].
@pytest.mark.parametrize(("idempotency", "expected"), [(False, 9), (True, 13)])
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
    api.get(f"accounts/{source.public_id}/balance")  # warm: last_used_at is written once
    headers = {"HTTP_IDEMPOTENCY_KEY": "count-1"} if idempotency else {}
    statements = _statements(lambda: api.post("transfers", body, **headers))
    assert len(statements) == expected, statements
