"""RELIABILITY B8: an API key naming another merchant's object (or a platform system
account) gets the same 404 as for a missing id, changes nothing, and leaves one
`api_key.foreign_object_denied` audit row, written after the response is sent (so it
survives the request's rolled-back transaction and costs the answer no time).
tests/api/test_tenancy.py runs the same check over every route; these are the details."""

import json
import logging
from typing import Any

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, connection
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

import audit.services
from accounts.models import Account, SystemPurpose
from accounts.system import system_account_get
from audit.context import ActorType, audit_log_after_response
from audit.middleware import AuditContextMiddleware
from audit.models import AuditLog
from core.models import IdempotencyKey
from tests.api.helpers import (
    FOREIGN_OBJECT_DENIED,
    assert_error,
    assert_foreign_object_denied,
    last_audit_id,
    row_counts,
    transfer_body,
)

MISSING_ACCOUNT = "acct_0000000000000000000000"


@pytest.mark.parametrize(
    "path",
    [
        "accounts/{id}",
        "accounts/{id}/balance",  # the fast path, with no account object
        "accounts/{id}/balance?as_of=2020-01-01T00:00:00Z",  # through get_object
        "accounts/{id}/entries",
    ],
)
def test_a_foreign_id_in_the_path_is_a_404_like_a_missing_one_and_audited(
    path, funded_account, other_merchant_api
):
    # There is no POST action on an object's path (the tenancy matrix would list it).
    ours = funded_account(balance=100)
    client = other_merchant_api
    before, audit_before = row_counts(), last_audit_id()

    response = client.get(path.format(id=ours.public_id), HTTP_X_REQUEST_ID="req-foreign")

    assert_error(response, 404, "not_found", param=None)
    assert response["X-Client-Request-Id"] == "req-foreign"
    assert_foreign_object_denied(
        response,
        client,
        counts_before=before,
        audit_id_before=audit_before,
        named=[(ours.public_id, None)],
    )
    before = row_counts()
    missing = client.get(path.format(id=MISSING_ACCOUNT))
    assert row_counts() == before  # a missing id is no attempt on anyone's object
    assert json.loads(response.content) == json.loads(missing.content)


def test_the_audit_row_carries_the_requests_context(api, other_merchant, funded_account):
    theirs = funded_account(merchant=other_merchant)

    response = api.get(
        f"accounts/{theirs.public_id}/balance",
        HTTP_X_REQUEST_ID="req-bola-1",
        HTTP_USER_AGENT="probe/1.0",
    )

    assert response.status_code == 404
    row = AuditLog.objects.get(action=FOREIGN_OBJECT_DENIED)
    assert (
        row.actor_type,
        row.actor,
        row.request_id,
        row.client_request_id,
        row.ip_address,
        row.user_agent,
    ) == (
        ActorType.API_KEY,
        api.api_key.public_id,
        response["X-Request-Id"],
        "req-bola-1",
        "127.0.0.1",
        "probe/1.0",
    )
    assert (row.object_type, row.object_id) == ("api_key", api.api_key.public_id)
    assert row.new_values == {
        "method": "GET",
        "path": f"/api/v1/accounts/{theirs.public_id}/balance",
        "object": theirs.public_id,
        "param": None,
    }
    assert row.reason == "an API key named another merchant's object"


def test_a_missing_id_records_nothing(api, funded_account):
    mine = funded_account(balance=100).public_id
    before = row_counts()

    for path in [f"accounts/{MISSING_ACCOUNT}", f"accounts/{MISSING_ACCOUNT}/balance"]:
        assert_error(api.get(path), 404, "not_found")
    assert_error(
        api.post("transfers", transfer_body(MISSING_ACCOUNT, mine)),
        404,
        "not_found",
        param="source_account",
    )

    assert row_counts() == before


def test_the_callers_own_object_left_out_by_a_filter_is_no_attempt(
    api, funded_account, make_customer
):
    # The list filters apply to a retrieve too: the caller's own account, filtered out by
    # another of its customers, is a 404 but no attempt on anyone else's object.
    mine = funded_account(customer=make_customer())
    other_customer = make_customer()
    before = row_counts()

    response = api.get(f"accounts/{mine.public_id}", {"customer": other_customer.public_id})

    assert_error(response, 404, "not_found")
    assert row_counts() == before


def test_a_foreign_id_answers_with_the_same_statements_as_a_missing_one(
    api, other_merchant, funded_account
):
    """No timing oracle: up to the response, a foreign id costs what a missing one does
    (the shared existence query); its audit row is written after the response."""
    theirs = funded_account(merchant=other_merchant).public_id
    api.get(f"accounts/{MISSING_ACCOUNT}/balance")  # the key cache warmed

    def statements(public_id: str) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(f"accounts/{public_id}/balance").status_code == 404
        return [
            query["sql"]
            for query in captured.captured_queries
            if AuditLog._meta.db_table not in query["sql"]
        ]

    foreign, missing = statements(theirs), statements(MISSING_ACCOUNT)

    assert len(foreign) == len(missing)
    assert AuditLog.objects.filter(action=FOREIGN_OBJECT_DENIED).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("idempotency_key", [None, "bola-1"])
def test_a_foreign_id_in_a_transfer_body_is_audited_though_nothing_commits(
    idempotency_key, api, other_merchant, funded_account, monkeypatch
):
    mine = funded_account(balance=1_000)
    theirs = funded_account(balance=1_000, merchant=other_merchant)
    balances = dict(Account.objects.values_list("public_id", "balance"))
    # The row is written in autocommit, after the request's transactions are over.
    in_atomic_block = []
    record = audit.services.audit_log_record

    def spy(**fields: Any) -> AuditLog:
        in_atomic_block.append(connection.in_atomic_block)
        return record(**fields)

    monkeypatch.setattr(audit.services, "audit_log_record", spy)
    headers = {} if idempotency_key is None else {"HTTP_IDEMPOTENCY_KEY": idempotency_key}
    before, audit_before = row_counts(), last_audit_id()

    response = api.post("transfers", transfer_body(theirs.public_id, mine.public_id), **headers)

    assert_error(response, 404, "not_found", param="source_account")
    assert_foreign_object_denied(
        response,
        api,
        counts_before=before,
        audit_id_before=audit_before,
        named=[(theirs.public_id, "source_account")],
    )
    assert in_atomic_block == [False]
    assert dict(Account.objects.values_list("public_id", "balance")) == balances
    # The idempotency phase rolled back and released the key: a corrected retry works.
    assert not IdempotencyKey.objects.exists()


def test_a_platform_system_account_is_audited_too(api, funded_account):
    settlement = system_account_get(currency="USD", purpose=SystemPurpose.SETTLEMENT)
    mine = funded_account(balance=100).public_id
    before, audit_before = row_counts(), last_audit_id()

    response = api.post(
        "transfers", transfer_body(mine, settlement.public_id), HTTP_IDEMPOTENCY_KEY="sys-1"
    )

    assert_error(response, 404, "not_found", param="destination_account")
    assert_foreign_object_denied(
        response,
        api,
        counts_before=before,
        audit_id_before=audit_before,
        named=[(settlement.public_id, "destination_account")],
    )


def test_a_failing_audit_write_is_logged_not_raised(
    api, other_merchant, funded_account, monkeypatch, caplog
):
    theirs = funded_account(merchant=other_merchant).public_id

    def broken(**fields: Any) -> AuditLog:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(audit.services, "audit_log_record", broken)

    with caplog.at_level(logging.ERROR, logger="audit.context"):
        response = api.get(f"accounts/{theirs}", HTTP_X_REQUEST_ID="req-broken")

    assert_error(response, 404, "not_found")
    [logged] = [r for r in caplog.records if r.name == "audit.context"]
    assert logged.levelno == logging.ERROR and logged.exc_info is not None
    assert FOREIGN_OBJECT_DENIED in logged.getMessage()
    assert response["X-Request-Id"] in logged.getMessage()
    assert not AuditLog.objects.filter(action=FOREIGN_OBJECT_DENIED).exists()


# The generic helper: audit.context.audit_log_after_response ------------------------------


def _noting_view(*actions: str) -> Any:
    def view(request: HttpRequest) -> HttpResponse:
        for action in actions:
            audit_log_after_response(
                request, action=action, object_type="test", object_id="1", reason="why"
            )
        return HttpResponse("ok")

    return view


def _close(response: HttpResponse) -> None:
    """What the WSGI server does once the body is sent; the connection kept open, as the
    test client keeps it (request_finished would close it, and the test's transaction)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def test_noted_rows_are_written_when_the_response_is_closed():
    request = RequestFactory().get("/x", HTTP_X_REQUEST_ID="req-after", HTTP_USER_AGENT="ua/1")

    response = AuditContextMiddleware(_noting_view("test.one", "test.two"))(request)

    assert not AuditLog.objects.filter(action__startswith="test.").exists()  # not yet
    _close(response)
    rows = list(AuditLog.objects.filter(action__startswith="test.").order_by("id"))
    assert [row.action for row in rows] == ["test.one", "test.two"]
    assert {
        (row.request_id, row.client_request_id, row.user_agent, row.ip_address) for row in rows
    } == {(response["X-Request-Id"], "req-after", "ua/1", "127.0.0.1")}


def test_a_failed_row_does_not_stop_the_others(monkeypatch, caplog):
    record = audit.services.audit_log_record

    def flaky(**fields: Any) -> AuditLog:
        if fields["action"] == "test.broken":
            raise RuntimeError("no")
        return record(**fields)

    monkeypatch.setattr(audit.services, "audit_log_record", flaky)
    response = AuditContextMiddleware(_noting_view("test.broken", "test.fine"))(
        RequestFactory().get("/x")
    )

    with caplog.at_level(logging.ERROR, logger="audit.context"):
        _close(response)

    assert list(
        AuditLog.objects.filter(action__startswith="test.").values_list("action", flat=True)
    ) == ["test.fine"]
    assert any("test.broken" in r.getMessage() for r in caplog.records)


def test_nothing_noted_adds_no_closer():
    plain = HttpResponse("ok")
    closers = len(plain._resource_closers)  # type: ignore[attr-defined]

    response = AuditContextMiddleware(lambda request: plain)(RequestFactory().get("/x"))

    assert len(response._resource_closers) == closers  # type: ignore[attr-defined]
