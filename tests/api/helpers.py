"""Helpers shared by the API tests: a client that speaks Bearer + JSON, the error-shape
assertion, and row counts to prove that a refused request wrote nothing."""

import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client

from accounts.models import Account, ApiKey, Customer, Hold, Merchant
from audit.models import AuditLog, Event
from config.wsgi import application
from ledger.models import LedgerEntry, LedgerTransaction
from payments.models import Payment, PaymentAttempt, Transfer

API_PREFIX = "/api/v1/"
ERROR_KEYS = {"type", "code", "message", "param"}
ERROR_STATUS = {
    "invalid_request_error": {400, 405, 413, 415},
    "authentication_error": {401},
    "permission_error": {403},
    "not_found": {404},
    "idempotency_error": {409, 422},
    "payment_error": {402},
    "rate_limit_error": {429},
    "api_error": {500},
}


def api_path(path: str) -> str:
    """`customers` → `/api/v1/customers`; an absolute path is left alone."""
    return path if path.startswith(("/", "http://", "https://")) else API_PREFIX + path


class ApiClient:
    """`django.test.Client` that sends `Authorization: Bearer <secret>` (when it has one)
    and JSON bodies. `raw=` sends bytes or text exactly as given."""

    def __init__(self, secret: str | None = None, *, api_key: ApiKey | None = None):
        self.secret = secret
        self.api_key = api_key
        self.client = Client()

    @property
    def merchant(self) -> Merchant:
        assert self.api_key is not None
        return self.api_key.merchant

    def _headers(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.secret is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.secret}"
        extra.update(headers)
        return extra

    def get(self, path: str, params: Mapping[str, Any] | None = None, **headers: Any) -> Any:
        return self.client.get(api_path(path), data=params or {}, **self._headers(headers))

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        content_type: str = "application/json",
        **headers: Any,
    ) -> Any:
        data = raw if raw is not None else json.dumps({} if body is None else body)
        return self.client.generic(
            "POST", api_path(path), data=data, content_type=content_type, **self._headers(headers)
        )

    def request(self, method: str, path: str, body: Any = None, **headers: Any) -> Any:
        data = "" if body is None else json.dumps(body)
        return self.client.generic(
            method,
            api_path(path),
            data=data,
            content_type="application/json",
            **self._headers(headers),
        )


def assert_error(
    response: HttpResponse,
    status: int,
    type: str,
    *,
    param: object = ...,
    code: str | None = None,
    extra: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, Any]:
    """The response is `status` with exactly `{"error": {"type", "code", "message",
    "param"}}` (plus the keys in `extra`), of `type`; `param` and `code` checked when given.
    Returns the inner error object."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS | set(extra), error
    assert error["type"] == type, error
    assert status in ERROR_STATUS[type], (status, error)
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    if param is not ...:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    # No internals: no traceback, no SQL, no Python reprs of exceptions.
    lowered = error["message"].lower()
    for leak in ("traceback", "psycopg", "django.", 'file "', "select * from"):
        assert leak not in lowered, error
    return error


COUNTED: tuple[type[Model], ...] = (
    Merchant,
    Customer,
    Account,
    Hold,
    Transfer,
    Payment,
    PaymentAttempt,
    LedgerTransaction,
    LedgerEntry,
    AuditLog,
    Event,
)


def row_counts() -> dict[str, int]:
    """Rows in every table an API write could touch."""
    return {model.__name__: model._default_manager.count() for model in COUNTED}


FOREIGN_OBJECT_DENIED = "api_key.foreign_object_denied"


def last_audit_id() -> int:
    """The newest audit row's id (0 for none): rows after it are a request's."""
    return AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0


def assert_foreign_object_denied(
    response: HttpResponse,
    client: ApiClient,
    *,
    counts_before: dict[str, int],
    audit_id_before: int,
    named: Sequence[tuple[str, str | None]],
) -> None:
    """Nothing changed but the audit log, which gained one `api_key.foreign_object_denied`
    row (RELIABILITY B8) per (public id, body field or None for the path) in `named`, in
    that order, by the client's key and for this response's request."""
    assert row_counts() == {**counts_before, "AuditLog": counts_before["AuditLog"] + len(named)}
    rows = list(AuditLog.objects.filter(id__gt=audit_id_before).order_by("id"))
    assert [(row.new_values["object"], row.new_values["param"]) for row in rows] == list(named)
    assert client.api_key is not None
    key_id = client.api_key.public_id
    request = response.wsgi_request  # type: ignore[attr-defined]
    for row in rows:
        assert (row.action, row.actor_type, row.actor) == (FOREIGN_OBJECT_DENIED, "api_key", key_id)
        assert (row.object_type, row.object_id) == ("api_key", key_id)
        assert row.request_id == response["X-Request-Id"]
        assert row.ip_address == "127.0.0.1"
        assert (row.new_values["method"], row.new_values["path"]) == (request.method, request.path)
        assert row.reason == "an API key named another merchant's object"


def transfer_body(source: str, destination: str, amount: int = 100) -> dict[str, Any]:
    """A transfer request between two account ids, in USD."""
    return {
        "source_account": source,
        "destination_account": destination,
        "amount": amount,
        "currency": "USD",
    }


def wsgi_call(**environ: Any) -> tuple[str, dict[str, str], bytes]:
    """Call the WSGI application the server runs (config.wsgi) as a server calls it, with
    the given environ entries (`body=` text or `body_bytes=`): (status line, headers, body).
    """
    answer: dict[str, Any] = {}

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
    ) -> Callable[[bytes], object]:
        answer["status"], answer["headers"] = status, dict(headers)
        return lambda data: None

    body = environ.pop("body", "").encode()
    body = environ.pop("body_bytes", body)
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    # As Django's test client does: the request must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = application({**base, **environ}, start_response)
        try:
            content = b"".join(response)
        finally:
            response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], content
