"""The admin's middleware skips the paths only machines call (core.middleware): the API, the
probes and /metrics get no session, Django user, message store or simple-history request,
what API writes record is what it was with the whole stack, and the admin still logs in,
shows messages and names its staff in history and audit rows."""

import json
import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import re_path
from pytest_django.fixtures import Settings
from simple_history.models import HistoricalRecords

from accounts.models import Account, ApiKey, Customer, Hold, Merchant
from audit.context import current_context
from audit.models import AuditLog
from tests.api.helpers import ApiClient
from tests.factories import AccountFactory, MerchantFactory

# MIDDLEWARE with Django's and simple-history's own classes, which run on every path.
ORIGINALS = {
    "core.middleware.SessionMiddleware": "django.contrib.sessions.middleware.SessionMiddleware",
    "core.middleware.AuthenticationMiddleware": (
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    ),
    "core.middleware.HistoryRequestMiddleware": (
        "simple_history.middleware.HistoryRequestMiddleware"
    ),
    "core.middleware.MessageMiddleware": "django.contrib.messages.middleware.MessageMiddleware",
}
WHOLE_STACK = [ORIGINALS.get(name, name) for name in settings.MIDDLEWARE]

MACHINE_PATHS = ["/api/v1/customers", "/api/", "/health/live", "/health/ready", "/metrics"]
# Paths that merely look like them keep the whole stack.
OTHER_PATHS = [
    "/api",
    "/apix",
    "/apix/v1/customers",
    "/API/v1/customers",
    "/admin",
    "/admin/",
    "/health",
    "/healthx/live",
    "/metrics/",
    "/metricsx",
    "/",
]
PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - a test user's


def probe(request: HttpRequest) -> JsonResponse:
    """What the middleware gave the request."""
    return JsonResponse(
        {
            "session": hasattr(request, "session"),
            "user": hasattr(request, "user"),
            "messages": hasattr(request, "_messages"),
            "history_request": getattr(HistoricalRecords.context, "request", None) is request,
            "actor_type": current_context().actor_type,
        }
    )


# For test_which_paths_skip_the_admins_middleware: every path answered by the probe.
urlpatterns = [re_path(r"^.*$", probe)]


@pytest.fixture
def staff() -> User:
    return User.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def history_marks() -> dict[type, int]:
    """The newest history id of each model simple-history tracks."""
    return {
        model: max(model.history.values_list("history_id", flat=True), default=0)
        for model in (Merchant, Customer, Account, Hold, ApiKey)
    }


def history_since(marks: dict[type, int]) -> list[tuple[str, str, Any, Any]]:
    """The history rows written since `marks`: model, type, user and change reason."""
    return [
        (model.__name__, row.history_type, row.history_user_id, row.history_change_reason)
        for model, mark in marks.items()
        for row in model.history.filter(history_id__gt=mark).order_by("history_id")  # type: ignore[attr-defined]
    ]


# Which paths --------------------------------------------------------------------------------


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("path", "skipped"),
    [(path, True) for path in MACHINE_PATHS] + [(path, False) for path in OTHER_PATHS],
)
def test_which_paths_skip_the_admins_middleware(path: str, skipped: bool, staff: User) -> None:
    client = Client()
    client.force_login(staff)

    seen = client.get(path).json()

    assert seen == {
        "session": not skipped,
        "user": not skipped,
        "messages": not skipped,
        "history_request": not skipped,
        # A staff session names the actor only off the machine paths.
        "actor_type": "system" if skipped else "staff",
    }


# The API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/customers", "/health/live", "/metrics"])
def test_machine_paths_read_no_session_and_set_no_cookie(
    path: str, staff: User, api: ApiClient
) -> None:
    client = Client()
    client.force_login(staff)  # a browser logged in to the admin, say

    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, headers={"Authorization": f"Bearer {api.secret}"})

    assert response.status_code == 200
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    tables = " ".join(query["sql"] for query in queries)
    assert "django_session" not in tables
    assert "auth_user" not in tables


def test_a_stale_session_cookie_is_left_alone_on_the_api_only(api: ApiClient) -> None:
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = "stale0session0key0of0a0logged0out0user"

    api_response = client.get(
        "/api/v1/customers", headers={"Authorization": f"Bearer {api.secret}"}
    )
    admin_response = client.get("/admin/login/")

    assert api_response.status_code == 200
    assert not api_response.cookies
    assert "Cookie" not in api_response.get("Vary", "")
    # The admin still reads the session, finds it gone and deletes the cookie.
    assert admin_response.cookies[settings.SESSION_COOKIE_NAME].value == ""


def test_the_api_docs_and_schema_still_render(client: Client) -> None:
    docs = client.get("/api/v1/docs/")
    schema = client.get("/api/v1/schema/", {"format": "json"})

    assert docs.status_code == 200
    assert docs["Content-Type"].startswith("text/html")
    assert "redoc" in docs.content.decode().lower()
    assert "/api/v1/schema/" in docs.content.decode()
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Moneta API"


@pytest.mark.parametrize("middleware", ["skipping", "whole stack"])
@pytest.mark.parametrize("logged_in", [False, True], ids=["no session", "staff session"])
def test_api_writes_record_what_they_did_with_the_whole_stack(
    middleware: str,
    logged_in: bool,
    staff: User,
    api: ApiClient,
    api_key: tuple[ApiKey, str],
    settings: Settings,
) -> None:
    assert len(set(WHOLE_STACK) - set(settings.MIDDLEWARE)) == len(ORIGINALS)
    if middleware == "whole stack":
        settings.MIDDLEWARE = WHOLE_STACK
    client = Client()
    if logged_in:
        client.force_login(staff)
    source = AccountFactory.create(merchant=api.merchant, currency="USD", balance=100)
    marks = history_marks()
    audit_mark = max(AuditLog.objects.values_list("id", flat=True), default=0)
    headers = {
        "Authorization": f"Bearer {api.secret}",
        "User-Agent": "merchant-sdk/2",
        "X-Request-Id": "req_write",
    }

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(
            f"/api/v1/{path}", json.dumps(body), content_type="application/json", headers=headers
        )
        assert response.status_code == 201, response.content
        result: dict[str, Any] = response.json()
        return result

    customer = post("customers", {"name": "Ann"})
    account = post("accounts", {"currency": "usd", "customer": customer["id"]})
    transfer = post(
        "transfers",
        {
            "source_account": source.public_id,
            "destination_account": account["id"],
            "amount": 10,
            "currency": "USD",
        },
    )

    # History rows: no history_user (an API key is no Django user), no reason.
    assert history_since(marks) == [
        ("Customer", "+", None, None),
        ("Account", "+", None, None),
    ]
    # Audit rows: the API key, with the request's id, address and user agent.
    rows = AuditLog.objects.filter(id__gt=audit_mark)
    assert sorted(row.action for row in rows) == [
        "account.created",
        "customer.created",
        "ledger_transaction.posted",
        "transfer.succeeded",
    ]
    assert {customer["id"], account["id"], transfer["id"]} <= {row.object_id for row in rows}
    assert {
        (row.actor_type, row.actor, row.client_request_id, row.ip_address, row.user_agent)
        for row in rows
    } == {("api_key", api_key[0].public_id, "req_write", "127.0.0.1", "merchant-sdk/2")}
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", row.request_id) for row in rows)


# The admin ----------------------------------------------------------------------------------


def test_the_admin_logs_in_and_shows_messages_after_actions(staff: User) -> None:
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/admin/login/")
    token = login_page.cookies[settings.CSRF_COOKIE_NAME].value

    logged_in = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ops", "password": PASSWORD, "next": "/admin/", "csrfmiddlewaretoken": token},
    )

    assert logged_in.status_code == 302
    assert logged_in["Location"] == "/admin/"
    assert logged_in.cookies[settings.SESSION_COOKIE_NAME].value
    index = client.get("/admin/")
    assert index.status_code == 200
    assert index.context["user"] == staff

    merchant = MerchantFactory.create()
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    created = client.post(
        "/admin/accounts/apikey/add/",
        {"merchant": merchant.pk, "name": "checkout", "csrfmiddlewaretoken": token},
        follow=True,
    )
    api_key = ApiKey.objects.get(merchant=merchant)
    revoked = client.post(
        "/admin/accounts/apikey/",
        {
            "action": "revoke_selected",
            "_selected_action": [api_key.pk],
            "csrfmiddlewaretoken": token,
        },
        follow=True,
    )

    created_messages = [str(message) for message in created.context["messages"]]
    assert len(created_messages) == 2  # the secret, and the admin's own "was added"
    assert created_messages[0].startswith("The new API key, shown this once — copy it now: ")
    assert [str(message) for message in revoked.context["messages"]] == ["Revoked."]
    # simple-history and the audit log still name the staff user of admin changes.
    assert [
        (row.history_type, row.history_user) for row in api_key.history.order_by("history_id")
    ] == [
        ("+", staff),
        ("~", staff),
    ]
    audit = AuditLog.objects.filter(action__startswith="api_key.").order_by("id")
    assert [(row.action, row.actor_type, row.actor) for row in audit] == [
        ("api_key.created", "staff", "ops"),
        ("api_key.revoked", "staff", "ops"),
    ]
