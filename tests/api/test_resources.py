"""The API's resources end to end (SPEC §4.1, §4.2): customers, accounts, balances, ledger
entries, transfers and events, with pagination, filters and request ids."""

import re
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.services import account_freeze
from ledger.models import LedgerEntry
from payments.models import Transfer, TransferStatus
from tests.api.helpers import ApiClient, assert_error, row_counts
from tests.invariants import invariant_violations

ID = re.compile(r"^[a-z]+_[0-9A-Za-z]{22}$")


def transfer(api: ApiClient, source: str, destination: str, amount: int, **extra: Any) -> Any:
    body = {"source_account": source, "destination_account": destination, "amount": amount}
    return api.post("transfers", {"currency": "usd", **body, **extra})


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# Customers and accounts ---------------------------------------------------------------------


def test_create_and_read_a_customer(api):
    response = api.post(
        "customers",
        {
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "external_reference": "crm-1",
            "metadata": {"tier": "gold"},
        },
    )

    assert response.status_code == 201, response.content
    customer = response.json()
    assert ID.match(customer["id"]) and customer["id"].startswith("cus_")
    assert customer["object"] == "customer"
    assert (customer["name"], customer["email"], customer["external_reference"]) == (
        "Ada Lovelace",
        "ada@example.com",
        "crm-1",
    )
    assert customer["metadata"] == {"tier": "gold"}
    assert abs(parse_time(customer["created"]) - timezone.now()) < timedelta(minutes=1)
    assert api.get(f"customers/{customer['id']}").json() == customer
    assert api.get("customers").json()["results"] == [customer]


def test_a_customer_needs_no_fields(api):
    response = api.post("customers", {})
    assert response.status_code == 201
    assert response.json()["name"] == ""


def test_create_and_read_an_account(api):
    customer = api.post("customers", {"name": "Ada"}).json()

    response = api.post(
        "accounts",
        {
            "currency": "eur",
            "customer": customer["id"],
            "description": "Main wallet",
            "metadata": {"k": "v"},
        },
    )

    assert response.status_code == 201, response.content
    account = response.json()
    assert account["id"].startswith("acct_") and ID.match(account["id"])
    assert account == {
        "id": account["id"],
        "object": "account",
        "currency": "EUR",
        "customer": customer["id"],
        "status": "active",
        "overdraft_limit": 0,
        "description": "Main wallet",
        "metadata": {"k": "v"},
        "created": account["created"],
    }
    assert api.get(f"accounts/{account['id']}").json() == account
    balance = api.get(f"accounts/{account['id']}/balance").json()
    assert balance == {"account": account["id"], "currency": "EUR", "balance": 0, "available": 0}
    assert api.get(f"accounts/{account['id']}/entries").json()["results"] == []


def test_an_account_without_a_customer(api):
    response = api.post("accounts", {"currency": "JPY", "customer": None})
    assert response.status_code == 201, response.content
    assert response.json()["customer"] is None


def test_system_accounts_are_not_in_the_api(api, funded_account):
    # Funding goes through the settlement system account; it is the platform's, not a
    # merchant's, and never listed.
    funded_account(balance=100)
    kinds = {a["id"][:5] for a in api.get("accounts").json()["results"]}
    assert kinds == {"acct_"}
    assert len(api.get("accounts").json()["results"]) == 1


# Transfers, balances, entries ----------------------------------------------------------------


def test_a_transfer_moves_money_and_shows_everywhere(api, funded_account):
    source, destination = funded_account(balance=1_000), funded_account()

    response = transfer(
        api,
        source.public_id,
        destination.public_id,
        250,
        description="rent",
        metadata={"invoice": "42"},
    )

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["id"].startswith("tr_")
    assert created["status"] == "succeeded"
    assert (created["amount"], created["currency"]) == (250, "USD")
    assert (created["source_account"], created["destination_account"]) == (
        source.public_id,
        destination.public_id,
    )
    assert created["failure_code"] is None
    assert created["ledger_transaction"].startswith("ltx_")
    assert (created["description"], created["metadata"]) == ("rent", {"invoice": "42"})
    assert api.get(f"transfers/{created['id']}").json() == created
    assert api.get(f"accounts/{source.public_id}/balance").json()["balance"] == 750
    assert api.get(f"accounts/{destination.public_id}/balance").json() == {
        "account": destination.public_id,
        "currency": "USD",
        "balance": 250,
        "available": 250,
    }
    assert invariant_violations() == {}


def test_balance_as_of_a_past_time(api, funded_account):
    source, destination = funded_account(balance=1_000), funded_account()
    before_anything = timezone.now() - timedelta(days=1)
    time.sleep(0.01)
    after_funding = timezone.now()
    time.sleep(0.01)
    transfer(api, source.public_id, destination.public_id, 300)
    time.sleep(0.01)
    after_first = timezone.now()
    time.sleep(0.01)
    transfer(api, source.public_id, destination.public_id, 200)

    def balance_at(when: datetime | str | None) -> int:
        params = (
            {} if when is None else {"as_of": when if isinstance(when, str) else when.isoformat()}
        )
        response = api.get(f"accounts/{source.public_id}/balance", params)
        assert response.status_code == 200, response.content
        return int(response.json()["balance"])

    assert balance_at(None) == 500
    assert balance_at(before_anything) == 0
    assert balance_at(after_funding) == 1_000
    assert balance_at(after_first) == 700
    assert balance_at(timezone.now() + timedelta(days=1)) == 500
    assert balance_at(after_first.astimezone(timezone.get_fixed_timezone(-300))) == 700
    assert balance_at(after_first.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == 700


def test_entries_are_newest_first_with_balance_after(api, funded_account):
    source, destination = funded_account(balance=1_000), funded_account()
    first = transfer(api, source.public_id, destination.public_id, 250).json()
    second = transfer(api, source.public_id, destination.public_id, 100).json()

    response = api.get(f"accounts/{source.public_id}/entries")

    assert response.status_code == 200
    entries = response.json()["results"]
    assert [(e["amount"], e["balance_after"]) for e in entries] == [
        (-100, 650),
        (-250, 750),
        (1_000, 1_000),
    ]
    assert [e["ledger_transaction"] for e in entries[:2]] == [
        second["ledger_transaction"],
        first["ledger_transaction"],
    ]
    assert all(e["object"] == "ledger_entry" and e["currency"] == "USD" for e in entries)
    created = [parse_time(e["created"]) for e in entries]
    assert created == sorted(created, reverse=True)
    destination_entries = api.get(f"accounts/{destination.public_id}/entries").json()["results"]
    assert [(e["amount"], e["balance_after"]) for e in destination_entries] == [
        (100, 350),
        (250, 250),
    ]


def test_entries_paginate(api, funded_account):
    source, destination = funded_account(balance=1_000), funded_account()
    for _ in range(4):
        transfer(api, source.public_id, destination.public_id, 1)

    page = api.get(f"accounts/{source.public_id}/entries", {"page_size": 2}).json()
    second = api.get(page["next"]).json()

    assert [e["balance_after"] for e in page["results"]] == [996, 997]
    assert [e["balance_after"] for e in second["results"]] == [998, 999]


# Declines --------------------------------------------------------------------------------------


def test_a_declined_transfer_is_402_naming_the_failed_transfer(api, funded_account):
    source, destination = funded_account(balance=100), funded_account()
    entries_before = LedgerEntry.objects.count()

    response = transfer(api, source.public_id, destination.public_id, 101)

    error = assert_error(
        response, 402, "payment_error", code="insufficient_funds", extra={"transfer"}
    )
    assert error["transfer"].startswith("tr_")
    failed = api.get(f"transfers/{error['transfer']}").json()
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "insufficient_funds"
    assert failed["ledger_transaction"] is None
    assert failed["amount"] == 101
    assert LedgerEntry.objects.count() == entries_before
    assert api.get(f"accounts/{source.public_id}/balance").json()["balance"] == 100
    events = api.get("events", {"type": "transfer.failed"}).json()["results"]
    assert [e["data"]["object"]["id"] for e in events] == [error["transfer"]]


@pytest.mark.parametrize("frozen_side", ["source", "destination"])
def test_a_frozen_account_is_402_account_inactive(frozen_side, api, funded_account):
    source, destination = funded_account(balance=100), funded_account()
    account_freeze(account=source if frozen_side == "source" else destination, reason="fraud")
    entries_before = LedgerEntry.objects.count()

    response = transfer(api, source.public_id, destination.public_id, 10)

    error = assert_error(
        response, 402, "payment_error", code="account_inactive", extra={"transfer"}
    )
    stored = Transfer.objects.get(public_id=error["transfer"])
    assert (stored.status, stored.failure_code) == (TransferStatus.FAILED, "account_inactive")
    assert LedgerEntry.objects.count() == entries_before
    frozen = api.get(f"accounts/{(source if frozen_side == 'source' else destination).public_id}")
    assert frozen.json()["status"] == "frozen"


# Events ----------------------------------------------------------------------------------------


def test_events_tell_what_happened(api, funded_account):
    customer = api.post("customers", {"name": "Ada"}).json()
    account = api.post("accounts", {"currency": "usd", "customer": customer["id"]}).json()
    source = funded_account(balance=1_000)
    moved = transfer(api, source.public_id, account["id"], 10).json()

    events = api.get("events").json()["results"]

    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        assert set(event) == {"id", "object", "type", "created", "data"}
        assert event["id"].startswith("evt_") and event["object"] == "event"
        by_type.setdefault(event["type"], []).append(event)
    assert by_type["customer.created"][0]["data"]["object"]["id"] == customer["id"]
    account_events = [e["data"]["object"]["id"] for e in by_type["account.created"]]
    assert account["id"] in account_events
    transfer_event = by_type["transfer.succeeded"][0]
    assert transfer_event["data"]["object"]["id"] == moved["id"]
    assert transfer_event["data"]["object"]["amount"] == 10
    assert transfer_event["data"]["object"]["status"] == "succeeded"
    assert events[0]["type"] == "transfer.succeeded"  # newest first
    assert api.get(f"events/{transfer_event['id']}").json() == transfer_event
    only = api.get("events", {"type": "customer.created"}).json()["results"]
    assert [e["id"] for e in only] == [e["id"] for e in by_type["customer.created"]]


# Pagination ------------------------------------------------------------------------------------


def test_cursor_pagination_newest_first_across_pages(api, make_customer):
    created = [make_customer(name=f"c{i}").public_id for i in range(7)]
    newest_first = list(reversed(created))

    pages, seen = [], []
    response = api.get("customers", {"page_size": 3})
    while True:
        page = response.json()
        assert set(page) == {"results", "next", "previous"}
        pages.append(page)
        seen += [c["id"] for c in page["results"]]
        if not page["next"]:
            break
        response = api.get(page["next"])
        assert response.status_code == 200

    assert seen == newest_first
    assert [len(p["results"]) for p in pages] == [3, 3, 1]
    assert pages[0]["previous"] is None
    back = api.get(pages[1]["previous"]).json()
    assert [c["id"] for c in back["results"]] == newest_first[:3]


def test_the_default_page_size_is_20(api, make_customer):
    for i in range(21):
        make_customer(name=f"c{i}")
    page = api.get("customers").json()
    assert len(page["results"]) == 20
    assert page["next"]


def test_new_objects_do_not_shift_a_cursor(api, make_customer):
    created = [make_customer(name=f"c{i}").public_id for i in range(4)]
    first = api.get("customers", {"page_size": 2}).json()
    make_customer(name="newer")

    second = api.get(first["next"]).json()

    assert [c["id"] for c in second["results"]] == [created[1], created[0]]


# Filters ---------------------------------------------------------------------------------------


def test_transfer_filters(api, funded_account):
    a, b, c = funded_account(balance=1_000), funded_account(), funded_account()
    euro = funded_account(balance=1_000, currency="EUR")
    euro_destination = funded_account(currency="EUR")
    ab = transfer(api, a.public_id, b.public_id, 10).json()
    bc = transfer(api, b.public_id, c.public_id, 5).json()
    declined = transfer(api, c.public_id, a.public_id, 999).json()["error"]["transfer"]
    eur = transfer(api, euro.public_id, euro_destination.public_id, 1, currency="eur").json()

    def ids(**params: str) -> list[str]:
        response = api.get("transfers", params)
        assert response.status_code == 200, response.content
        return [t["id"] for t in response.json()["results"]]

    assert ids() == [eur["id"], declined, bc["id"], ab["id"]]
    assert ids(status="succeeded") == [eur["id"], bc["id"], ab["id"]]
    assert ids(status="failed") == [declined]
    assert ids(account=a.public_id) == [declined, ab["id"]]
    assert ids(account=b.public_id) == [bc["id"], ab["id"]]
    assert ids(account=b.public_id, status="failed") == []
    assert ids(currency="eur") == ids(currency="EUR") == [eur["id"]]
    assert ids(currency="usd") == [declined, bc["id"], ab["id"]]


def test_account_filters(api, make_customer, funded_account, merchant):
    ada, bob = make_customer(), make_customer()
    usd = funded_account(customer=ada)
    eur = funded_account(customer=ada, currency="EUR")
    other = funded_account(customer=bob)
    account_freeze(account=other, reason="check")

    def ids(**params: str) -> list[str]:
        return [a["id"] for a in api.get("accounts", params).json()["results"]]

    assert ids(customer=ada.public_id) == [eur.public_id, usd.public_id]
    assert ids(customer=bob.public_id) == [other.public_id]
    assert ids(currency="eur") == [eur.public_id]
    assert ids(status="frozen") == [other.public_id]
    assert ids(status="active", customer=ada.public_id, currency="USD") == [usd.public_id]
    assert ids(customer="cus_0000000000000000000000") == []


def test_created_after_and_before(api, make_customer):
    old = make_customer(name="old")
    time.sleep(0.01)
    middle = timezone.now()
    time.sleep(0.01)
    new = make_customer(name="new")

    def ids(**params: str) -> list[str]:
        response = api.get("customers", params)
        assert response.status_code == 200, response.content
        return [c["id"] for c in response.json()["results"]]

    assert ids(created_after=middle.isoformat()) == [new.public_id]
    assert ids(created_before=middle.isoformat()) == [old.public_id]
    assert ids(created_after=(middle - timedelta(days=1)).isoformat()) == [
        new.public_id,
        old.public_id,
    ]
    assert ids(created_before=(middle - timedelta(days=1)).isoformat()) == []
    assert ids(created_after=middle.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == [new.public_id]
    # The same filters on the other lists.
    for path in ["accounts", "transfers", "events"]:
        assert api.get(path, {"created_after": middle.isoformat()}).status_code == 200
    events = api.get("events", {"created_after": middle.isoformat()}).json()["results"]
    assert [e["data"]["object"]["id"] for e in events] == [new.public_id]


# Request ids -----------------------------------------------------------------------------------


def test_the_clients_request_id_is_echoed_on_every_response(api, anonymous_api, funded_account):
    source, destination = funded_account(balance=10), funded_account()
    responses = [
        api.get("customers", HTTP_X_REQUEST_ID="rid-1"),
        api.post("customers", {"name": "x"}, HTTP_X_REQUEST_ID="rid-2"),
        api.post("customers", {"status": "x"}, HTTP_X_REQUEST_ID="rid-3"),
        anonymous_api.get("customers", HTTP_X_REQUEST_ID="rid-4"),
        api.get("nope", HTTP_X_REQUEST_ID="rid-5"),
        api.request("DELETE", "customers", HTTP_X_REQUEST_ID="rid-6"),
        api.post(
            "transfers",
            {
                "source_account": source.public_id,
                "destination_account": destination.public_id,
                "amount": 11,
                "currency": "USD",
            },
            HTTP_X_REQUEST_ID="rid-7",
        ),
        api.post("customers", raw="{", HTTP_X_REQUEST_ID="rid-8"),
    ]
    assert [r.status_code for r in responses] == [200, 201, 400, 401, 404, 405, 402, 400]
    assert [r["X-Client-Request-Id"] for r in responses] == [f"rid-{i}" for i in range(1, 9)]
    ours = [r["X-Request-Id"] for r in responses]
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", id) for id in ours) and len(set(ours)) == 8


def test_a_request_id_is_generated_when_absent(api, anonymous_api):
    responses = [api.get("customers"), api.get("customers"), anonymous_api.get("customers")]
    ids = [r["X-Request-Id"] for r in responses]
    assert all(ids) and len(set(ids)) == 3


@pytest.mark.parametrize("given", ["x" * 201, "bad\nid", "bad\x00id", "caf\u00e9"])
def test_an_unusable_client_request_id_is_not_kept(given, api):
    response = api.get("customers", HTTP_X_REQUEST_ID=given)
    assert response.status_code == 200
    assert response["X-Request-Id"] and response["X-Request-Id"] != given
    assert "X-Client-Request-Id" not in response


# Reads write nothing ---------------------------------------------------------------------------


def test_reads_write_nothing(api, funded_account, make_customer):
    source, destination = funded_account(balance=100), funded_account()
    transfer(api, source.public_id, destination.public_id, 10)
    make_customer()
    api.get("customers")  # last_used_at is written at most once a minute
    before = row_counts()

    for path in ["customers", "accounts", "transfers", "events"]:
        for item in api.get(path).json()["results"]:
            assert api.get(f"{path}/{item['id']}").status_code == 200
    api.get(f"accounts/{source.public_id}/balance")
    api.get(f"accounts/{source.public_id}/entries")

    assert row_counts() == before


def test_the_openapi_schema_lists_every_resource(anonymous_api):
    response = anonymous_api.get("schema/", {"format": "json"})
    assert response.status_code == 200
    text = response.content.decode()
    for path in [
        "/api/v1/customers",
        "/api/v1/accounts/{id}/balance",
        "/api/v1/accounts/{id}/entries",
        "/api/v1/transfers",
        "/api/v1/events/{id}",
    ]:
        assert path in text, path
