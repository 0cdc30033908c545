"""The webhook endpoint through the real server (bin/serve), with raw sockets where the
request is malformed (RELIABILITY B5 on this path): an oversized body refused unread
within a second, a chunked one refused, an understated length never taken for the
signed body, and a valid event stored."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from bench.api import database_url
from bench.webhook_requests import stripe_event_body, stripe_signature
from payments.models import ProviderWebhook
from tests.servers import free_port, serving
from tests.test_http_edge import _exchange

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[str]:
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    port = free_port()
    with serving(
        tmp_path_factory.mktemp("webhooks"),
        port,
        workers=1,
        DATABASE_URL=url,
        PROVIDER_SIMULATOR_ASYNC_SECONDS="0",
    ) as (_, log):
        yield f"127.0.0.1:{port}"
        lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        assert [line for line in lines if line.get("status", 0) >= 500] == []


def _post(framing: bytes, body: bytes, signature: str = "") -> bytes:
    header = f"Stripe-Signature: {signature}\r\n".encode() if signature else b""
    return (
        b"POST /webhooks/providers/stripe/ HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\n" + header + framing + b"\r\n" + body
    )


def test_a_valid_event_is_stored(server: str) -> None:
    body = stripe_event_body(reference="pi_served")
    status, _, answer, _ = _exchange(
        server,
        _post(
            b"Content-Length: %d\r\n" % len(body), body, stripe_signature(body)["Stripe-Signature"]
        ),
    )
    assert status == 200, answer
    assert ProviderWebhook.objects.get().object_reference == "pi_served"


def test_a_3_mb_body_is_413_unread_within_a_second(server: str) -> None:
    """Only its head and first kilobyte are sent: the answer comes without the rest."""
    request = _post(b"Content-Length: 3000000\r\n", b"[" + b"1," * 512)
    status, _, answer, took = _exchange(server, request)
    assert status == 413, answer
    assert json.loads(answer)["error"]["code"] == "body_too_large"
    assert took < 1.0
    assert not ProviderWebhook.objects.exists()


def test_a_chunked_body_is_411(server: str) -> None:
    body = stripe_event_body(reference="pi_chunked")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    signature = stripe_signature(body)["Stripe-Signature"]
    status, _, answer, _ = _exchange(
        server, _post(b"Transfer-Encoding: chunked\r\n", chunked, signature)
    )
    assert status == 411, answer
    assert not ProviderWebhook.objects.exists()


def test_an_understated_length_is_400(server: str) -> None:
    """The server reads the declared length only: what it reads is not what was signed."""
    body = stripe_event_body(reference="pi_short")
    signature = stripe_signature(body)["Stripe-Signature"]
    status, _, answer, _ = _exchange(
        server, _post(b"Content-Length: %d\r\n" % (len(body) - 20), body, signature)
    )
    assert status == 400, answer
    assert json.loads(answer)["error"]["code"] == "webhook_invalid"
    assert not ProviderWebhook.objects.exists()


def test_no_setting_leaks_into_the_answer(server: str) -> None:
    status, _, answer, _ = _exchange(server, _post(b"Content-Length: 2\r\n", b"{}", "t=1,v1=00"))
    assert status == 400
    assert settings.STRIPE_WEBHOOK_SECRET.encode() not in answer
