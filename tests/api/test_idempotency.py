"""Idempotency-Key on the POSTs that create or move money (SPEC §4.1, RELIABILITY L3/B6/F13,
docs/adr/0006-idempotency-keys.md)."""

import json
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from psycopg import errors as pg_errors

from accounts.api_keys import api_key_create
from accounts.models import Account, ApiKey, Customer, Merchant
from core.api.idempotency import REPLAYED_HEADER, request_fingerprint
from core.models import IdempotencyKey, IdempotencyKeyState
from core.tasks import purge_idempotency_keys
from ledger.models import LedgerTransaction
from payments.models import Transfer, TransferStatus
from tests.api.helpers import ApiClient, assert_error, row_counts

KEY = "HTTP_IDEMPOTENCY_KEY"


def transfer_body(source: Account, destination: Account, amount: int = 100) -> dict[str, Any]:
    return {
        "source_account": source.public_id,
        "destination_account": destination.public_id,
        "amount": amount,
        "currency": source.currency,
        "description": "rent",
        "metadata": {"order": "42"},
    }


def balances(*accounts: Account) -> list[int]:
    return [Account.objects.get(pk=account.pk).balance for account in accounts]


def new_key() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def pair(funded_account: Callable[..., Account]) -> tuple[Account, Account]:
    return funded_account(balance=1_000), funded_account(balance=0)


# --- replays -------------------------------------------------------------------------------


def test_replay_returns_the_first_response_byte_for_byte_and_moves_nothing(
    api: ApiClient, pair: tuple[Account, Account]
) -> None:
    source, destination = pair
    key = new_key()
    first = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    assert first.status_code == 201, first.content
    assert REPLAYED_HEADER not in first
    after_first = (row_counts(), balances(source, destination))
    assert after_first[1] == [900, 100]

    for _ in range(3):
        again = api.post("transfers", transfer_body(source, destination), **{KEY: key})
        assert again.status_code == 201
        assert again.content == first.content
        assert again["Content-Type"] == first["Content-Type"]
        assert again[REPLAYED_HEADER] == "true"
    assert (row_counts(), balances(source, destination)) == after_first
    assert Transfer.objects.count() == 1
    stored = IdempotencyKey.objects.get(merchant=api.merchant, key=key)
    assert stored.state == IdempotencyKeyState.COMPLETED
    assert stored.response_status == 201
    assert stored.response_body is not None
    assert bytes(stored.response_body) == first.content


def test_the_body_is_compared_canonically(api: ApiClient, pair: tuple[Account, Account]) -> None:
    """Key order and whitespace do not make another request."""
    source, destination = pair
    key = new_key()
    body = transfer_body(source, destination)
    first = api.post("transfers", raw=json.dumps(body), **{KEY: key})
    assert first.status_code == 201
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=4)
    again = api.post("transfers", raw=reordered, **{KEY: key})
    assert again.status_code == 201
    assert again.content == first.content
    assert again[REPLAYED_HEADER] == "true"
    assert balances(source, destination) == [900, 100]


@pytest.mark.parametrize(
    ("path", "body", "model"),
    [
        ("customers", {"name": "Ada", "email": "ada@example.com"}, Customer),
        ("accounts", {"currency": "eur", "metadata": {"k": "v"}}, Account),
    ],
)
def test_customers_and_accounts_are_created_once(
    api: ApiClient, path: str, body: dict[str, Any], model: type[Customer] | type[Account]
) -> None:
    key = new_key()
    before = model.objects.count()
    first = api.post(path, body, **{KEY: key})
    assert first.status_code == 201, first.content
    again = api.post(path, body, **{KEY: key})
    assert (again.status_code, again.content) == (201, first.content)
    assert again[REPLAYED_HEADER] == "true"
    assert model.objects.count() == before + 1


def test_without_the_header_every_request_runs(api: ApiClient, pair: tuple[Account, Account]):
    source, destination = pair
    for _ in range(2):
        assert api.post("transfers", transfer_body(source, destination)).status_code == 201
    assert Transfer.objects.count() == 2
    assert not IdempotencyKey.objects.exists()


def test_another_api_key_of_the_same_merchant_shares_the_key(
    api: ApiClient, merchant: Merchant, pair: tuple[Account, Account]
) -> None:
    source, destination = pair
    key = new_key()
    first = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    _, secret = api_key_create(merchant=merchant, name="second")
    again = ApiClient(secret).post("transfers", transfer_body(source, destination), **{KEY: key})
    assert (again.status_code, again.content) == (201, first.content)
    assert Transfer.objects.count() == 1


# --- the same key for another request -------------------------------------------------------


def test_same_key_different_body_is_422(api: ApiClient, pair: tuple[Account, Account]) -> None:
    source, destination = pair
    key = new_key()
    assert (
        api.post("transfers", transfer_body(source, destination), **{KEY: key}).status_code == 201
    )
    before = (row_counts(), balances(source, destination))
    response = api.post("transfers", transfer_body(source, destination, amount=101), **{KEY: key})
    assert_error(
        response, 422, "idempotency_error", code="idempotency_key_reused", param="Idempotency-Key"
    )
    assert (row_counts(), balances(source, destination)) == before


def test_same_key_different_path_is_422(api: ApiClient) -> None:
    key = new_key()
    assert api.post("customers", {"name": "Ada"}, **{KEY: key}).status_code == 201
    before = row_counts()
    response = api.post("accounts", {"currency": "USD"}, **{KEY: key})
    assert_error(response, 422, "idempotency_error", code="idempotency_key_reused")
    assert row_counts() == before


def test_the_same_key_from_another_merchant_is_an_independent_request(
    api: ApiClient,
    other_merchant_api: ApiClient,
    other_merchant: Merchant,
    pair: tuple[Account, Account],
    funded_account: Callable[..., Account],
) -> None:
    source, destination = pair
    other_source = funded_account(balance=500, merchant=other_merchant)
    other_destination = funded_account(balance=0, merchant=other_merchant)
    key = new_key()
    mine = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    theirs = other_merchant_api.post(
        "transfers", transfer_body(other_source, other_destination, amount=50), **{KEY: key}
    )
    assert mine.status_code == theirs.status_code == 201
    assert REPLAYED_HEADER not in theirs
    assert json.loads(theirs.content)["id"] != json.loads(mine.content)["id"]
    assert balances(other_source, other_destination) == [450, 50]
    # Even the very same body from the other merchant is not answered from A's cache.
    same_body = other_merchant_api.post(
        "customers", {"name": "Ada"}, **{KEY: "shared-customer-key"}
    )
    my_customer = api.post("customers", {"name": "Ada"}, **{KEY: "shared-customer-key"})
    assert REPLAYED_HEADER not in my_customer
    assert json.loads(same_body.content)["id"] != json.loads(my_customer.content)["id"]
    assert IdempotencyKey.objects.filter(key=key).count() == 2


def test_a_key_past_the_retention_window_counts_as_new(
    api: ApiClient, pair: tuple[Account, Account]
) -> None:
    source, destination = pair
    key = new_key()
    api.post("transfers", transfer_body(source, destination), **{KEY: key})
    expired = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS, seconds=1)
    IdempotencyKey.objects.filter(key=key).update(created_at=expired, completed_at=expired)
    response = api.post("transfers", transfer_body(source, destination, amount=7), **{KEY: key})
    assert response.status_code == 201
    assert REPLAYED_HEADER not in response
    assert balances(source, destination) == [893, 107]


def test_a_key_completed_late_is_kept_a_whole_window_from_its_completion(
    api: ApiClient, pair: tuple[Account, Account]
) -> None:
    # Claimed almost 24 hours ago, taken over and completed just now: still replayed.
    source, destination = pair
    key = new_key()
    api.post("transfers", transfer_body(source, destination), **{KEY: key})
    claimed = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS, seconds=1)
    IdempotencyKey.objects.filter(key=key).update(created_at=claimed)

    replayed = api.post("transfers", transfer_body(source, destination), **{KEY: key})

    assert replayed[REPLAYED_HEADER] == "true"
    assert balances(source, destination) == [900, 100]
    assert purge_idempotency_keys() == 0


# --- what is stored and what is not ---------------------------------------------------------


def test_a_validation_failure_is_not_stored_and_a_corrected_retry_works(
    api: ApiClient, pair: tuple[Account, Account]
) -> None:
    source, destination = pair
    key = new_key()
    bad = transfer_body(source, destination)
    bad["amount"] = "100"
    assert_error(api.post("transfers", bad, **{KEY: key}), 400, "invalid_request_error")
    assert not IdempotencyKey.objects.filter(key=key).exists()

    missing = transfer_body(source, destination)
    missing["destination_account"] = "acct_doesnotexist"
    assert_error(api.post("transfers", missing, **{KEY: key}), 404, "not_found")
    assert_error(api.post("transfers", raw="{not json", **{KEY: key}), 400, "invalid_request_error")
    assert not IdempotencyKey.objects.filter(key=key).exists()

    good = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    assert good.status_code == 201
    assert REPLAYED_HEADER not in good
    assert balances(source, destination) == [900, 100]


def test_a_server_error_is_not_stored_and_rolls_back(
    api: ApiClient, pair: tuple[Account, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    from payments.api import views

    source, destination = pair
    key = new_key()
    real = views.transfer_create

    def broken(**kwargs: Any) -> Transfer:
        real(**kwargs)  # moves the money, then fails: all of it must roll back
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "transfer_create", broken)
    before = (row_counts(), balances(source, destination))
    assert_error(
        api.post("transfers", transfer_body(source, destination), **{KEY: key}), 500, "api_error"
    )
    assert (row_counts(), balances(source, destination)) == before
    assert not IdempotencyKey.objects.filter(key=key).exists()

    monkeypatch.setattr(views, "transfer_create", real)
    assert (
        api.post("transfers", transfer_body(source, destination), **{KEY: key}).status_code == 201
    )
    assert balances(source, destination) == [900, 100]


def test_a_declined_transfer_is_stored_and_replayed(
    api: ApiClient, funded_account: Callable[..., Account]
) -> None:
    source, destination = funded_account(balance=50), funded_account(balance=0)
    key = new_key()
    first = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    error = assert_error(first, 402, "payment_error", code="insufficient_funds", extra={"transfer"})
    failed = Transfer.objects.get(public_id=error["transfer"])
    assert failed.status == TransferStatus.FAILED
    before = row_counts()

    # Funding the source meanwhile changes nothing: the key's outcome is the decline.
    again = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    assert (again.status_code, again.content) == (402, first.content)
    assert again[REPLAYED_HEADER] == "true"
    assert row_counts() == before
    assert Transfer.objects.count() == 1
    assert balances(source, destination) == [50, 0]


# --- in flight, takeover, fencing -----------------------------------------------------------


def _in_flight_row(
    merchant: Merchant, key: str, body: dict[str, Any], *, locked_ago: timedelta
) -> IdempotencyKey:
    path = "/api/v1/transfers"
    locked_at = timezone.now() - locked_ago
    return IdempotencyKey.objects.create(
        merchant=merchant,
        key=key,
        fingerprint=request_fingerprint("POST", path, body),
        request_method="POST",
        request_path=path,
        state=IdempotencyKeyState.IN_FLIGHT,
        lock_token=uuid.uuid4(),
        locked_at=locked_at,
        created_at=locked_at,
    )


def test_a_key_in_flight_is_409(api: ApiClient, pair: tuple[Account, Account]) -> None:
    source, destination = pair
    key = new_key()
    body = transfer_body(source, destination)
    _in_flight_row(api.merchant, key, body, locked_ago=timedelta(seconds=1))
    before = (row_counts(), balances(source, destination))
    assert_error(
        api.post("transfers", body, **{KEY: key}),
        409,
        "idempotency_error",
        code="idempotency_key_in_use",
        param="Idempotency-Key",
    )
    # Another request with a key in flight is still a reuse.
    assert_error(
        api.post("transfers", transfer_body(source, destination, 5), **{KEY: key}),
        422,
        "idempotency_error",
    )
    assert (row_counts(), balances(source, destination)) == before


def test_a_stale_lock_is_taken_over(api: ApiClient, pair: tuple[Account, Account]) -> None:
    source, destination = pair
    key = new_key()
    body = transfer_body(source, destination)
    timeout = settings.IDEMPOTENCY_KEY_LOCK_TIMEOUT_SECONDS
    stale = _in_flight_row(api.merchant, key, body, locked_ago=timedelta(seconds=timeout + 1))
    response = api.post("transfers", body, **{KEY: key})
    assert response.status_code == 201, response.content
    stale_after = IdempotencyKey.objects.get(pk=stale.pk)
    assert stale_after.state == IdempotencyKeyState.COMPLETED
    assert stale_after.lock_token != stale.lock_token
    assert Transfer.objects.count() == 1
    assert balances(source, destination) == [900, 100]


def test_a_holder_whose_key_was_taken_over_rolls_back(
    api: ApiClient, pair: tuple[Account, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    """F13: the paused holder wakes up after another request took its key over; its fenced
    completion matches no row, so its transfer must not commit."""
    from payments.api import views

    source, destination = pair
    key = new_key()
    real = views.transfer_create

    def taken_over_meanwhile(**kwargs: Any) -> Transfer:
        transfer = real(**kwargs)
        IdempotencyKey.objects.filter(key=key).update(
            lock_token=uuid.uuid4(), locked_at=timezone.now()
        )
        return transfer

    monkeypatch.setattr(views, "transfer_create", taken_over_meanwhile)
    before = (row_counts(), balances(source, destination))
    response = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    assert_error(response, 409, "idempotency_error", code="idempotency_key_in_use")
    assert (row_counts(), balances(source, destination)) == before
    assert IdempotencyKey.objects.get(key=key).state == IdempotencyKeyState.IN_FLIGHT


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_in_the_work_reruns_the_whole_phase(
    api: ApiClient, pair: tuple[Account, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside the outer transaction the service cannot retry itself; the decorator does."""
    from payments.api import views

    source, destination = pair
    real = views.transfer_create
    calls = []

    def deadlocks_once(**kwargs: Any) -> Transfer:
        calls.append(1)
        transfer = real(**kwargs)
        if len(calls) == 1:
            error = OperationalError("deadlock detected")
            error.__cause__ = pg_errors.DeadlockDetected("deadlock detected")
            raise error
        return transfer

    monkeypatch.setattr(views, "transfer_create", deadlocks_once)
    key = new_key()
    response = api.post("transfers", transfer_body(source, destination), **{KEY: key})
    assert response.status_code == 201, response.content
    assert len(calls) == 2
    assert Transfer.objects.count() == 1
    assert balances(source, destination) == [900, 100]
    assert IdempotencyKey.objects.get(key=key).state == IdempotencyKeyState.COMPLETED


# --- the header itself ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "k" * 256, "tab\tkey", "caf\u00e9", "new\nline"])
def test_a_malformed_key_is_400(api: ApiClient, bad: str) -> None:
    before = row_counts()
    response = api.post("customers", {"name": "Ada"}, **{KEY: bad})
    assert_error(
        response, 400, "invalid_request_error", param="Idempotency-Key", code="parameter_invalid"
    )
    assert row_counts() == before
    assert not IdempotencyKey.objects.exists()


def test_a_key_of_255_printable_characters_is_fine(api: ApiClient) -> None:
    key = ("a-Z_0 9~!" * 30)[:255]
    first = api.post("customers", {"name": "Ada"}, **{KEY: key})
    assert first.status_code == 201
    assert api.post("customers", {"name": "Ada"}, **{KEY: key}).content == first.content


def test_the_schema_documents_the_header_and_its_errors() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, success in (
        ("/api/v1/customers", "201"),
        ("/api/v1/accounts", "201"),
        ("/api/v1/transfers", "201"),
    ):
        operation = schema["paths"][path]["post"]
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        assert [p["name"] for p in headers] == ["Idempotency-Key"], path
        assert headers[0].get("required", False) is False
        assert {success, "409", "422"} <= set(operation["responses"]), path
    assert "402" in schema["paths"]["/api/v1/transfers"]["post"]["responses"]
    get = schema["paths"]["/api/v1/transfers"]["get"]
    assert all(p["name"] != "Idempotency-Key" for p in get.get("parameters", []))


# --- retention ------------------------------------------------------------------------------


def test_purge_deletes_keys_older_than_the_ttl(
    merchant: Merchant, api_key: tuple[ApiKey, str]
) -> None:
    now = timezone.now()
    old = now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS, minutes=1)
    recent = now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS, minutes=-1)

    def row(key: str, state: str, at: Any, claimed: Any = None) -> IdempotencyKey:
        completed = state == IdempotencyKeyState.COMPLETED
        return IdempotencyKey.objects.create(
            merchant=merchant,
            key=key,
            fingerprint="0" * 64,
            request_method="POST",
            request_path="/api/v1/customers",
            state=state,
            lock_token=uuid.uuid4(),
            locked_at=None if completed else at,
            response_status=201 if completed else None,
            response_body=b"{}" if completed else None,
            created_at=claimed or at,
            completed_at=at if completed else None,
        )

    row("old-completed", IdempotencyKeyState.COMPLETED, old)
    row("old-abandoned", IdempotencyKeyState.IN_FLIGHT, old)
    row("recent-completed", IdempotencyKeyState.COMPLETED, recent)
    row("recent-in-flight", IdempotencyKeyState.IN_FLIGHT, recent)
    row("claimed-long-ago-completed-now", IdempotencyKeyState.COMPLETED, recent, claimed=old)

    assert purge_idempotency_keys.delay().get() == 2
    assert set(IdempotencyKey.objects.values_list("key", flat=True)) == {
        "recent-completed",
        "recent-in-flight",
        "claimed-long-ago-completed-now",
    }
    assert purge_idempotency_keys() == 0


def test_purge_is_scheduled_hourly() -> None:
    entries = [
        entry
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == "core.tasks.purge_idempotency_keys"
    ]
    assert [entry["schedule"] for entry in entries] == [timedelta(hours=1)]


# --- real races (L3) ------------------------------------------------------------------------

THREADS = 8


def _fire_together(requests: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at once; each thread closes its connection."""
    results: list[Any] = [None] * len(requests)
    errors: list[BaseException] = []
    start = threading.Barrier(len(requests))

    def worker(index: int) -> None:
        try:
            start.wait()
            results[index] = requests[index]()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_simultaneous_identical_requests_execute_once(
    api_key: tuple[ApiKey, str], pair: tuple[Account, Account]
) -> None:
    source, destination = pair
    _, secret = api_key
    key = new_key()
    body = transfer_body(source, destination)

    def send() -> tuple[int, bytes]:
        response = ApiClient(secret).post("transfers", body, **{KEY: key})
        return response.status_code, response.content

    results = _fire_together([send] * THREADS)
    statuses = [status for status, _ in results]
    assert set(statuses) <= {201, 409}, results
    created = {content for status, content in results if status == 201}
    assert len(created) == 1, results
    for status, content in results:
        if status == 409:
            assert json.loads(content)["error"]["code"] == "idempotency_key_in_use"

    assert Transfer.objects.count() == 1
    assert LedgerTransaction.objects.filter(transfer__isnull=False).count() == 1
    assert balances(source, destination) == [900, 100]
    # No 409 stays stuck: once the holder is done, a retry gets its response.
    status, content = send()
    assert (status, content) == (201, created.pop())


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_with_different_keys_all_execute(
    api_key: tuple[ApiKey, str], pair: tuple[Account, Account]
) -> None:
    source, destination = pair
    _, secret = api_key

    def sender(key: str) -> Callable[[], int]:
        def send() -> int:
            response = ApiClient(secret).post(
                "transfers", transfer_body(source, destination), **{KEY: key}
            )
            return int(response.status_code)

        return send

    results = _fire_together([sender(new_key()) for _ in range(THREADS)])
    assert results == [201] * THREADS
    assert Transfer.objects.filter(status=TransferStatus.SUCCEEDED).count() == THREADS
    assert IdempotencyKey.objects.filter(state=IdempotencyKeyState.COMPLETED).count() == THREADS
    assert balances(source, destination) == [1_000 - 100 * THREADS, 100 * THREADS]
