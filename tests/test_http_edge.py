"""The HTTP edge through the real server (bin/serve), with raw sockets where the request
is malformed: request bodies are read whole or refused (never lost or half-read), a
client's X-Forwarded-Proto changes nothing, API answers are not cached, and the admin's
static files and the API docs are served by the project itself under a
Content-Security-Policy."""

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection

from accounts.api_keys import api_key_create
from accounts.models import Customer
from accounts.services import customer_create, merchant_create
from bench.api import database_url
from core.headers import CONTENT_SECURITY_POLICY
from tests.servers import free_port, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[str]:
    """One bin/serve for the module, on the test database (tests commit what it must see)."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    port = free_port()
    with serving(
        tmp_path_factory.mktemp("edge"),
        port,
        workers=2,
        DATABASE_URL=url,
        API_KEY_HASH_SECRET=settings.API_KEY_HASH_SECRET,
    ) as (_, log):
        yield f"127.0.0.1:{port}"
        # None of the refusals below is a server error.
        lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
        assert [line for line in lines if line.get("status", 0) >= 500] == []


@pytest.fixture
def secret() -> str:
    """An API key the server can see (committed)."""
    _, secret = api_key_create(merchant=merchant_create(name="Edge"))
    return secret


def _exchange(
    address: str, request: bytes, *, half_close: bool = False, timeout: float = 30
) -> tuple[int, dict[str, str], bytes, float]:
    """Send `request` as it is; the status, headers and body of the answer, and how long it
    took. The server closes every connection after its answer."""
    host, port = address.split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as client:
        client.sendall(request)
        if half_close:
            client.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    took = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    return int(status_line.split()[1]), headers, body, took


def _post_customers(secret: str, framing: bytes, body: bytes) -> bytes:
    return (
        b"POST /api/v1/customers HTTP/1.1\r\nHost: localhost\r\n"
        b"Authorization: Bearer " + secret.encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + framing + b"\r\n" + body
    )


BODY = json.dumps({"name": "Ada", "email": "ada@example.com"}).encode()


@pytest.mark.django_db(transaction=True)
def test_a_body_with_its_length_is_read_whole(server: str, secret: str) -> None:
    status, headers, body, _ = _exchange(
        server, _post_customers(secret, b"Content-Length: %d\r\n" % len(BODY), BODY)
    )

    assert status == 201, body
    assert json.loads(body)["name"] == "Ada"
    assert headers["cache-control"] == "no-store"
    assert Customer.objects.get().email == "ada@example.com"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "framing",
    [
        pytest.param(b"Transfer-Encoding: chunked\r\n", id="chunked"),
        pytest.param(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", id="both"),
    ],
)
def test_a_chunked_body_is_refused_with_411(server: str, secret: str, framing: bytes) -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)

    status, headers, body, _ = _exchange(server, _post_customers(secret, framing, chunked))

    # uWSGI handed such a body over as none: a customer with no name was created (201).
    assert status == 411, body
    assert json.loads(body)["error"]["code"] == "length_required"
    assert headers["x-request-id"].startswith("req_")
    # Answered inside the API's headers, like every other API response.
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert not Customer.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "lengths",
    [
        pytest.param(b"Content-Length: 2\r\nContent-Length: %d\r\n" % len(BODY), id="two"),
        pytest.param(b"Content-Length: %d, 2\r\n" % len(BODY), id="list"),
        pytest.param(b"Content-Length: abc\r\n", id="word"),
        pytest.param(b"Content-Length: -1\r\n", id="negative"),
    ],
)
def test_a_content_length_that_is_not_one_number_is_refused(
    server: str, secret: str, lengths: bytes
) -> None:
    status, _, body, _ = _exchange(server, _post_customers(secret, lengths, BODY))

    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "content_length_invalid"
    assert not Customer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_body_cut_short_is_a_400_at_once(server: str, secret: str) -> None:
    request = _post_customers(secret, b"Content-Length: %d\r\n" % (len(BODY) + 10), BODY)

    status, _, body, took = _exchange(server, request, half_close=True)

    # It was a 500 after uWSGI's 4 s socket timeout, holding the worker meanwhile.
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "body_incomplete"
    assert took < 2
    assert not Customer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_body_that_stops_arriving_is_a_408(server: str, secret: str) -> None:
    request = _post_customers(secret, b"Content-Length: %d\r\n" % (len(BODY) + 10), BODY)

    status, _, body, took = _exchange(server, request)  # the connection stays open

    assert status == 408, body
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert took < 10  # uWSGI's socket timeout (4 s), not the request's (30 s)
    assert not Customer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_client_sent_forwarded_proto_changes_nothing(server: str) -> None:
    merchant = merchant_create(name="Forwarded")
    _, key = api_key_create(merchant=merchant)
    for name in ("One", "Two"):
        customer_create(merchant=merchant, name=name)

    status, headers, body, _ = _exchange(
        server,
        b"GET /api/v1/customers?page_size=1 HTTP/1.1\r\nHost: localhost\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Scheme: https\r\n\r\n",
    )

    # uWSGI took the header as the request's scheme: the link said https.
    assert status == 200, body
    assert json.loads(body)["next"].startswith("http://localhost/api/v1/customers?")
    assert headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in headers


def test_the_admin_is_styled_by_files_the_server_serves(server: str) -> None:
    page = httpx.get(f"http://{server}/admin/login/", trust_env=False)
    [stylesheet] = re.findall(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.text)

    css = httpx.get(f"http://{server}{stylesheet}", trust_env=False)
    compressed = httpx.get(
        f"http://{server}{stylesheet}", headers={"Accept-Encoding": "gzip"}, trust_env=False
    )

    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "max-age=315360000" in css.headers["Cache-Control"]  # a hashed name: for ever
    assert "body" in css.text
    assert compressed.headers["Content-Encoding"] == "gzip"


def test_the_api_docs_load_nothing_from_elsewhere(server: str) -> None:
    page = httpx.get(f"http://{server}/api/v1/docs/", trust_env=False)
    sources = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page.text)
    scripts = [
        httpx.get(f"http://{server}{source}", trust_env=False)
        for source in re.findall(r'<script src="([^"]+)"', page.text)
    ]

    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "//" not in page.text.replace("<!DOCTYPE html>", "")  # no host named at all
    assert sources and all(source.startswith("/") for source in sources)
    assert "<script>" not in page.text  # the policy allows no inline script
    [redoc] = scripts
    assert redoc.status_code == 200
    assert "javascript" in redoc.headers["Content-Type"]
    assert "Redoc" in redoc.text
    schema = httpx.get(f"http://{server}/api/v1/schema/", trust_env=False)
    assert schema.status_code == 200
    assert schema.headers["Cache-Control"] == "no-store"
