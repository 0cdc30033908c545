"""Inbound webhooks: the simulator's real deliveries verified and parsed, and forged, stale,
malformed and oversized ones refused (WebhookInvalid), for both providers. The bodies are
signed by the simulator's own code: the outside world's signature, not ours."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from payments.providers.base import OperationKind, ResultStatus, WebhookInvalid
from payments.providers.registry import adapter_get
from simulator.adyen_api import hmac_signature
from simulator.config import SimulatorConfig
from simulator.stripe_api import StripeFormat
from tests.payments.providers.conftest import Received
from tests.payments.providers.test_adapters import authorize, new_key


@pytest.fixture
def over_http(simulator_url: str, settings: Any) -> None:
    settings.PROVIDER_SIMULATOR_URL = simulator_url


def delivered(received: Received, provider: str, reference: str) -> tuple[dict[str, str], bytes]:
    return received.wait_for(f"/webhooks/providers/{provider}/", reference)


def test_stripe_async_payment_webhook_is_verified_and_parsed(
    over_http: None, webhooks_received: Received
) -> None:
    adapter = adapter_get("stripe")
    payment = authorize(adapter, "pm_card_async")
    headers, body = delivered(webhooks_received, "stripe", payment.reference)
    [event] = adapter.webhook_parse(body=body, headers=headers)
    assert (event.provider, event.type, event.kind, event.reference) == (
        "stripe",
        "payment_intent.succeeded",
        OperationKind.AUTHORIZE,
        payment.reference,
    )
    assert event.event_id.startswith("evt_")
    assert (event.result.status, event.result.amount_captured) == (ResultStatus.SUCCEEDED, 1000)
    assert abs((event.created - datetime.datetime.now(datetime.UTC)).total_seconds()) < 60


def test_adyen_async_payment_notification_is_verified_and_parsed(
    over_http: None, webhooks_received: Received
) -> None:
    adapter = adapter_get("adyen")
    payment = authorize(adapter, "pm_card_async")
    headers, body = delivered(webhooks_received, "adyen", payment.reference)
    [event] = adapter.webhook_parse(body=body, headers=headers)
    assert (event.provider, event.type, event.kind, event.reference) == (
        "adyen",
        "AUTHORISATION",
        OperationKind.AUTHORIZE,
        payment.reference,
    )
    assert event.event_id == f"{payment.reference}:AUTHORISATION:true"
    # Adyen says authorised; whether it was captured is for a retrieve (docs/providers.md).
    assert (event.result.status, event.result.amount, event.result.currency) == (
        ResultStatus.REQUIRES_CAPTURE,
        1000,
        "EUR",
    )


def test_adyen_capture_notification_names_the_payment(
    over_http: None, webhooks_received: Received
) -> None:
    adapter = adapter_get("adyen")
    payment = authorize(adapter, capture=False)
    adapter.capture(
        idempotency_key=new_key(), reference=payment.reference, amount=700, currency="EUR"
    )
    headers, body = delivered(
        webhooks_received, "adyen", f'"originalReference": "{payment.reference}"'
    )
    [event] = adapter.webhook_parse(body=body, headers=headers)
    assert (event.type, event.kind, event.reference) == (
        "CAPTURE",
        OperationKind.CAPTURE,
        payment.reference,
    )
    assert (event.result.status, event.result.amount_captured) == (ResultStatus.SUCCEEDED, 700)


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_a_failed_payout_webhook_reports_it_failed(
    over_http: None, webhooks_received: Received, provider: str
) -> None:
    adapter = adapter_get(provider)
    payout = adapter.payout(
        idempotency_key=new_key(), amount=500, currency="EUR", destination="ba_fail", reference="po"
    )
    headers, body = delivered(webhooks_received, provider, payout.reference)
    [event] = adapter.webhook_parse(body=body, headers=headers)
    assert (event.kind, event.reference, event.result.status) == (
        OperationKind.PAYOUT,
        payout.reference,
        ResultStatus.FAILED,
    )


def stripe_event(reference: str = "pi_123") -> bytes:
    return json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "created": int(time.time()),
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": reference,
                    "object": "payment_intent",
                    "amount": 1000,
                    "amount_received": 1000,
                    "amount_capturable": 0,
                    "currency": "eur",
                    "status": "succeeded",
                }
            },
        }
    ).encode()


def stripe_signed(body: bytes, *, at: float | None = None) -> dict[str, str]:
    return StripeFormat(SimulatorConfig()).sign(body, time.time() if at is None else at)


def test_stripe_signed_event_is_accepted() -> None:
    body = stripe_event()
    [event] = adapter_get("stripe").webhook_parse(body=body, headers=stripe_signed(body))
    assert (event.reference, event.result.status) == ("pi_123", ResultStatus.SUCCEEDED)


def test_stripe_events_about_other_objects_are_accepted_and_left_out() -> None:
    event = json.loads(stripe_event())
    event["type"], event["data"]["object"] = "charge.succeeded", {"id": "ch_1", "object": "charge"}
    body = json.dumps(event).encode()
    assert adapter_get("stripe").webhook_parse(body=body, headers=stripe_signed(body)) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": "att_1"},
        {"metadata": ["att_1"]},
        {"status": "requires_payment_method", "last_payment_error": "card_declined"},
    ],
    ids=["metadata a string", "metadata a list", "last_payment_error a string"],
)
def test_a_signed_stripe_event_with_fields_of_other_types_is_parsed(fields: dict[str, Any]) -> None:
    """Signed is not well-formed: a field of another type is read as absent, not a 500."""
    event = json.loads(stripe_event())
    event["data"]["object"].update(fields)
    body = json.dumps(event).encode()
    [parsed] = adapter_get("stripe").webhook_parse(body=body, headers=stripe_signed(body))
    assert (parsed.reference, parsed.attempt_reference) == ("pi_123", "")


def signed_stripe(body: bytes, *, at_offset: float = 0) -> tuple[bytes, dict[str, str]]:
    return body, stripe_signed(body, at=time.time() + at_offset)


def without_v1(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    timestamp = headers["Stripe-Signature"].split(",")[0]
    return body, {"Stripe-Signature": f"{timestamp},v0=abc"}


def signed_by_another_secret(body: bytes) -> tuple[bytes, dict[str, str]]:
    config = SimulatorConfig(stripe_webhook_secret="whsec_another-endpoint")  # noqa: S106
    return body, StripeFormat(config).sign(body, time.time())


def reserialized(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The same event, as another JSON writer would put it: the signature is over bytes."""
    return json.dumps(json.loads(body), indent=1).encode(), headers


# Requests are made when the test runs, not when it is collected: a suite that runs longer
# than the tolerance would otherwise find every signature stale.
@pytest.mark.parametrize(
    ("request_make", "reason"),
    [
        # signed, then changed
        (lambda: (stripe_event("pi_other"), stripe_signed(stripe_event())), "bad signature"),
        (lambda: (stripe_event(), {}), "signature header missing"),
        (
            lambda: (stripe_event(), {"Stripe-Signature": "t=nonsense"}),
            "malformed signature header",
        ),
        (lambda: signed_stripe(stripe_event(), at_offset=-600), "stale timestamp"),
        (lambda: signed_stripe(stripe_event(), at_offset=310), "timestamp in the future"),
        (lambda: without_v1(*signed_stripe(stripe_event())), "no v1 signature"),
        (lambda: signed_by_another_secret(stripe_event()), "bad signature"),
        (lambda: reserialized(*signed_stripe(stripe_event())), "bad signature"),
        (lambda: signed_stripe(b"{not json"), "malformed JSON"),
        (lambda: signed_stripe(b"\xff\xfe"), "body is not UTF-8"),
        (lambda: signed_stripe(b'{"object": "list"}'), "not an event"),
    ],
    ids=[
        "forged",
        "unsigned",
        "garbled header",
        "stale",
        "future",
        "no v1",
        "another secret",
        "re-serialized",
        "malformed",
        "not utf-8",
        "not event",
    ],
)
def test_stripe_webhooks_refused(
    request_make: Callable[[], tuple[bytes, dict[str, str]]], reason: str
) -> None:
    body, headers = request_make()
    with pytest.raises(WebhookInvalid) as refused:
        adapter_get("stripe").webhook_parse(body=body, headers=headers)
    assert refused.value.reason == reason


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_an_oversized_webhook_is_refused_unread(settings: Any, provider: str) -> None:
    settings.PROVIDER_WEBHOOK_MAX_BODY_BYTES = 1024
    body = b"{" + b" " * 2000 + b"}"
    with pytest.raises(WebhookInvalid) as refused:
        adapter_get(provider).webhook_parse(body=body, headers=stripe_signed(body))
    assert refused.value.reason == "body too large"


def adyen_item(
    *, event_code: str = "AUTHORISATION", value: int = 1000, at: float | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "eventCode": event_code,
        "success": "true",
        "pspReference": "ABCDEF0123456789",
        "originalReference": "",
        "merchantReference": "att_1",
        "merchantAccountCode": "MonetaTest",
        "amount": {"value": value, "currency": "EUR"},
        "eventDate": datetime.datetime.fromtimestamp(
            time.time() if at is None else at, datetime.UTC
        ).isoformat(),
    }
    item["additionalData"] = {
        "hmacSignature": hmac_signature(item, SimulatorConfig().adyen_hmac_key)
    }
    return item


def adyen_body(*items: dict[str, Any]) -> bytes:
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]}
    ).encode()


def test_adyen_signed_notification_is_accepted_and_unknown_codes_ignored() -> None:
    body = adyen_body(adyen_item(), adyen_item(event_code="REPORT_AVAILABLE"))
    [event] = adapter_get("adyen").webhook_parse(body=body, headers={})
    assert (event.type, event.reference) == ("AUTHORISATION", "ABCDEF0123456789")


def forged_item() -> dict[str, Any]:
    item = adyen_item()
    item["amount"]["value"] = 1  # signed for 1000
    return item


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (lambda: adyen_body(forged_item()), "bad signature"),
        # one bad item: all refused
        (lambda: adyen_body(adyen_item(), forged_item()), "bad signature"),
        (
            lambda: adyen_body({**adyen_item(), "additionalData": {}}),
            "without amount or hmacSignature",
        ),
        (lambda: adyen_body(adyen_item(at=time.time() - 600)), "stale timestamp"),
        (lambda: adyen_body(adyen_item(at=time.time() + 600)), "timestamp in the future"),
        (lambda: b"{not json", "malformed JSON"),
        (lambda: b'{"notificationItems": []}', "no notificationItems"),
        (lambda: b'{"notificationItems": [{"NotificationRequestItem": 1}]}', "not an object"),
    ],
    ids=["forged", "one forged", "unsigned", "stale", "future", "malformed", "empty", "not object"],
)
def test_adyen_notifications_refused(body: Callable[[], bytes], reason: str) -> None:
    with pytest.raises(WebhookInvalid) as refused:
        adapter_get("adyen").webhook_parse(body=body(), headers={})
    assert reason in refused.value.reason
