"""Webhooks over HTTP: sent when an asynchronous outcome is due, to Moneta's endpoint per
provider, signed as the real provider signs (checked with the stripe SDK, and with an HMAC
computed here for Adyen), tried again when the receiver fails, given up without harm."""

import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from simulator.config import (
    DEFAULT_ADYEN_API_KEY,
    DEFAULT_ADYEN_HMAC_KEY,
    DEFAULT_ADYEN_MERCHANT_ACCOUNT,
    DEFAULT_STRIPE_API_KEY,
    DEFAULT_STRIPE_WEBHOOK_SECRET,
    SimulatorConfig,
)
from tests.servers import free_port
from tests.simulator.calls import adyen_pay, adyen_post, eur, key, stripe_pay, stripe_post
from tests.simulator.servers import Received, running, webhook_receiver


@pytest.fixture
def simulator(config: SimulatorConfig) -> Iterator[tuple[str, Received]]:
    with (
        webhook_receiver() as (receiver_url, received),
        running(dataclasses.replace(config, webhook_url=receiver_url)) as url,
    ):
        yield url, received


@pytest.fixture
def stripe_http(simulator: tuple[str, Received]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {DEFAULT_STRIPE_API_KEY}"}
    with httpx.Client(base_url=simulator[0], headers=headers, trust_env=False) as client:
        yield client


@pytest.fixture
def adyen_http(simulator: tuple[str, Received]) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": DEFAULT_ADYEN_API_KEY}
    with httpx.Client(base_url=simulator[0], headers=headers, trust_env=False) as client:
        yield client


def stripe_event(received: Received) -> Any:
    path, headers, body = received.next()
    assert path == "/webhooks/providers/stripe/"
    return stripe.Webhook.construct_event(
        body.decode(), headers["Stripe-Signature"], DEFAULT_STRIPE_WEBHOOK_SECRET
    )


def adyen_item(received: Received) -> dict[str, Any]:
    """The one notification item of the next Adyen POST, its signature checked here."""
    path, _, body = received.json()
    assert path == "/webhooks/providers/adyen/"
    assert body["live"] == "false"
    [wrapper] = body["notificationItems"]
    item = wrapper["NotificationRequestItem"]
    signed = ":".join(
        [
            item["pspReference"],
            item["originalReference"],
            item["merchantAccountCode"],
            item["merchantReference"],
            str(item["amount"]["value"]),
            item["amount"]["currency"],
            item["eventCode"],
            item["success"],
        ]
    )
    expected = hmac.new(bytes.fromhex(DEFAULT_ADYEN_HMAC_KEY), signed.encode(), hashlib.sha256)
    assert item["additionalData"]["hmacSignature"] == base64.b64encode(expected.digest()).decode()
    assert item["merchantAccountCode"] == DEFAULT_ADYEN_MERCHANT_ACCOUNT
    return item


def settled_deliveries(client: httpx.Client) -> list[dict[str, Any]]:
    """The admin's deliveries once none is pending (the receiver may have answered before
    the simulator recorded it)."""
    deadline = time.monotonic() + 5
    while True:
        deliveries: list[dict[str, Any]] = client.get("/_simulator/webhooks").json()["data"]
        if deliveries and all(d["status"] != "pending" for d in deliveries):
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.02)


def test_stripe_async_payment_sends_a_signed_event(
    simulator: tuple[str, Received], stripe_http: httpx.Client
) -> None:
    intent = stripe_pay(stripe_http, "pm_card_async").json()

    event = stripe_event(simulator[1])

    assert event.type == "payment_intent.succeeded"
    assert event.id.startswith("evt_")
    assert (event.data.object.id, event.data.object.status) == (intent["id"], "succeeded")


def test_a_stripe_signature_with_another_secret_does_not_verify(
    simulator: tuple[str, Received], stripe_http: httpx.Client
) -> None:
    stripe_pay(stripe_http, "pm_card_async", manual=True)

    _, headers, body = simulator[1].next()

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], "whsec_other")
    event = stripe.Webhook.construct_event(
        body.decode(), headers["Stripe-Signature"], DEFAULT_STRIPE_WEBHOOK_SECRET
    )
    assert event.type == "payment_intent.amount_capturable_updated"


def test_stripe_refund_and_payouts_send_events(
    simulator: tuple[str, Received], stripe_http: httpx.Client
) -> None:
    intent = stripe_pay(stripe_http).json()
    refund = stripe_post(stripe_http, "/v1/refunds", payment_intent=intent["id"]).json()
    event = stripe_event(simulator[1])
    assert (event.type, event.data.object.id, event.data.object.status) == (
        "refund.updated",
        refund["id"],
        "succeeded",
    )

    paid = stripe_post(stripe_http, "/v1/payouts", amount=5, currency="eur", destination="ba_ok")
    assert stripe_event(simulator[1]).type == "payout.paid"
    stripe_post(stripe_http, "/v1/payouts", amount=5, currency="eur", destination="ba_fail")
    failed = stripe_event(simulator[1])
    assert (failed.type, failed.data.object.failure_code) == ("payout.failed", "account_closed")
    assert paid.json()["status"] == "pending"


def test_adyen_async_capture_refund_and_payout_send_signed_notifications(
    simulator: tuple[str, Received], adyen_http: httpx.Client
) -> None:
    received = simulator[1]
    attempt = key()
    psp = adyen_pay(adyen_http, "pm_card_async", manual=True, idempotency_key=attempt).json()[
        "pspReference"
    ]
    item = adyen_item(received)
    assert (item["eventCode"], item["success"], item["pspReference"]) == (
        "AUTHORISATION",
        "true",
        psp,
    )
    assert (item["merchantReference"], item["originalReference"]) == (attempt, "")

    capture = adyen_post(adyen_http, f"/adyen/v71/payments/{psp}/captures", amount=eur(600)).json()
    item = adyen_item(received)
    assert (item["eventCode"], item["pspReference"], item["originalReference"]) == (
        "CAPTURE",
        capture["pspReference"],
        psp,
    )
    assert item["amount"] == eur(600)

    refund = adyen_post(adyen_http, f"/adyen/v71/payments/{psp}/refunds", amount=eur(600)).json()
    item = adyen_item(received)
    assert (
        item["eventCode"],
        item["success"],
        item["pspReference"],
        item["originalReference"],
    ) == (
        "REFUND",
        "true",
        refund["pspReference"],
        psp,
    )

    adyen_post(adyen_http, "/adyen/v71/payouts", amount=eur(9), bankAccount={"token": "ba_fail"})
    item = adyen_item(received)
    assert (item["eventCode"], item["success"]) == ("PAYOUT_THIRDPARTY", "false")


def test_adyen_cancel_sends_a_cancellation(
    simulator: tuple[str, Received], adyen_http: httpx.Client
) -> None:
    psp = adyen_pay(adyen_http, manual=True).json()["pspReference"]

    adyen_post(adyen_http, f"/adyen/v71/payments/{psp}/cancels", reference="att_cancel")

    item = adyen_item(simulator[1])
    assert (item["eventCode"], item["originalReference"], item["merchantReference"]) == (
        "CANCELLATION",
        psp,
        "att_cancel",
    )


def test_an_outcome_read_before_it_is_sent_is_sent_once(
    simulator: tuple[str, Received], stripe_http: httpx.Client
) -> None:
    intent = stripe_pay(stripe_http, "pm_card_async").json()
    time.sleep(0.35)  # due; the read below may settle it before the background thread does
    assert stripe_http.get(f"/v1/payment_intents/{intent['id']}").json()["status"] == "succeeded"

    assert stripe_event(simulator[1]).data.object.id == intent["id"]
    time.sleep(0.3)
    assert simulator[1].calls.empty()


def test_a_failing_receiver_gets_the_webhook_again(
    simulator: tuple[str, Received], stripe_http: httpx.Client
) -> None:
    simulator[1].failures_left = 2

    intent = stripe_pay(stripe_http, "pm_card_async").json()

    assert stripe_event(simulator[1]).data.object.id == intent["id"]
    deliveries = settled_deliveries(stripe_http)
    assert [(d["status"], d["attempts"]) for d in deliveries] == [("sent", 3)]
    assert deliveries[0]["last_error"] == "answered 500"


def test_an_unreachable_receiver_is_given_up_and_the_server_goes_on(
    config: SimulatorConfig,
) -> None:
    unreachable = dataclasses.replace(config, webhook_url=f"http://127.0.0.1:{free_port()}")
    headers = {"Authorization": f"Bearer {DEFAULT_STRIPE_API_KEY}"}
    with (
        running(unreachable, webhook_backoff_seconds=0.01) as url,
        httpx.Client(base_url=url, headers=headers, trust_env=False) as client,
    ):
        stripe_pay(client, "pm_card_async")
        deliveries = settled_deliveries(client)
        after = stripe_pay(client)

    assert [(d["status"], d["attempts"]) for d in deliveries] == [("failed", 5)]
    assert "ConnectError" in deliveries[0]["last_error"]
    assert after.status_code == 200


def test_in_process_sends_no_webhook(stripe_client: httpx.Client, admin: httpx.Client) -> None:
    intent = stripe_pay(stripe_client, "pm_card_async").json()
    time.sleep(0.35)

    assert stripe_client.get(f"/v1/payment_intents/{intent['id']}").json()["status"] == "succeeded"
    assert admin.get("/_simulator/webhooks").json() == {"data": []}
