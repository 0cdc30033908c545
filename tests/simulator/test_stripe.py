"""Stripe's wire format, in-process: every test payment method, idempotency, capture,
cancel, refunds, payouts and lookups."""

import time

import httpx
import pytest

from tests.simulator.calls import key, stripe_pay, stripe_post
from tests.simulator.conftest import ASYNC_SECONDS


def charges(admin: httpx.Client, by: str = "key") -> dict[str, int]:
    return admin.get("/_simulator/charges", params={"by": by}).json()["stripe"]


def test_visa_is_authorized_and_captured(stripe_client: httpx.Client, admin: httpx.Client) -> None:
    response = stripe_pay(stripe_client, idempotency_key="att_visa", amount=1234)

    assert response.status_code == 200
    intent = response.json()
    assert intent["id"].startswith("pi_")
    assert intent["object"] == "payment_intent"
    assert (intent["status"], intent["amount"], intent["amount_received"]) == (
        "succeeded",
        1234,
        1234,
    )
    assert (intent["currency"], intent["capture_method"]) == ("eur", "automatic")
    assert intent["metadata"]["moneta_attempt"] == "att_visa"
    assert charges(admin) == {"att_visa": 1}
    again = stripe_client.get(f"/v1/payment_intents/{intent['id']}").json()
    assert again["status"] == "succeeded"


@pytest.mark.parametrize(
    ("payment_method", "code", "decline_code"),
    [
        ("pm_card_declined", "card_declined", "generic_decline"),
        ("pm_card_insufficient_funds", "card_declined", "insufficient_funds"),
        ("pm_card_expired", "expired_card", "expired_card"),
        ("pm_card_fraud", "card_declined", "fraudulent"),
    ],
)
def test_declines_are_402_card_errors_replayed_and_no_charge(
    stripe_client: httpx.Client,
    admin: httpx.Client,
    payment_method: str,
    code: str,
    decline_code: str,
) -> None:
    response = stripe_pay(stripe_client, payment_method, idempotency_key="att_d")

    assert response.status_code == 402
    assert response.headers["Stripe-Should-Retry"] == "false"
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        code,
        decline_code,
    )
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["payment_intent"]["last_payment_error"]["decline_code"] == decline_code
    replay = stripe_pay(stripe_client, payment_method, idempotency_key="att_d")
    assert (replay.status_code, replay.json()) == (402, response.json())
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert charges(admin) == {}


def test_timeout_is_recorded_then_withheld_and_replayed(
    stripe_client: httpx.Client, admin: httpx.Client
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        stripe_pay(stripe_client, "pm_card_timeout", idempotency_key="att_t")

    replay = stripe_pay(stripe_client, "pm_card_timeout", idempotency_key="att_t")
    assert replay.status_code == 200
    assert replay.json()["status"] == "succeeded"
    assert charges(admin) == {"att_t": 1}


def test_flaky_fails_once_with_nothing_done_then_succeeds(
    stripe_client: httpx.Client, admin: httpx.Client
) -> None:
    first = stripe_pay(stripe_client, "pm_card_flaky", idempotency_key="att_f")

    assert first.status_code == 500
    assert first.headers["Stripe-Should-Retry"] == "true"
    assert first.json()["error"]["type"] == "api_error"
    assert charges(admin) == {}
    search = stripe_client.get(
        "/v1/payment_intents/search", params={"query": "metadata['moneta_attempt']:'att_f'"}
    )
    assert search.json()["data"] == []
    retry = stripe_pay(stripe_client, "pm_card_flaky", idempotency_key="att_f")
    assert (retry.status_code, retry.json()["status"]) == (200, "succeeded")
    assert charges(admin) == {"att_f": 1}


def test_flaky_fails_once_per_payment_even_with_a_new_key(stripe_client: httpx.Client) -> None:
    first = stripe_pay(stripe_client, "pm_card_flaky", reference="pay_flaky")
    second = stripe_pay(stripe_client, "pm_card_flaky", reference="pay_flaky")

    assert (first.status_code, second.status_code) == (500, 200)


@pytest.mark.parametrize(("manual", "settled"), [(False, "succeeded"), (True, "requires_capture")])
def test_async_is_processing_then_settles_when_read(
    stripe_client: httpx.Client, manual: bool, settled: str
) -> None:
    intent = stripe_pay(stripe_client, "pm_card_async", manual=manual).json()
    assert (intent["status"], intent["amount_received"]) == ("processing", 0)

    time.sleep(ASYNC_SECONDS + 0.05)

    later = stripe_client.get(f"/v1/payment_intents/{intent['id']}").json()
    assert later["status"] == settled
    assert later["amount_received"] == (0 if manual else 1000)
    assert later["amount_capturable"] == (1000 if manual else 0)


def test_an_unknown_payment_method_is_refused(stripe_client: httpx.Client) -> None:
    response = stripe_pay(stripe_client, "pm_card_nope")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "resource_missing",
        "payment_method",
    )


def test_same_key_other_parameters_is_an_idempotency_error(stripe_client: httpx.Client) -> None:
    first = stripe_pay(stripe_client, idempotency_key="att_same", amount=1000)

    other = stripe_pay(stripe_client, idempotency_key="att_same", amount=999)
    same = stripe_pay(stripe_client, idempotency_key="att_same", amount=1000)

    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert (same.status_code, same.json()) == (200, first.json())
    assert "Idempotent-Replayed" not in first.headers


def test_a_validation_error_is_not_stored_for_the_key(stripe_client: httpx.Client) -> None:
    refused = stripe_client.post(
        "/v1/payment_intents",
        data={
            "amount": "ten",
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": "true",
        },
        headers={"Idempotency-Key": "k_bad"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "amount"

    accepted = stripe_client.post(
        "/v1/payment_intents",
        data={
            "amount": "10",
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": "true",
        },
        headers={"Idempotency-Key": "k_bad"},
    )
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        (
            {
                "amount": "10",
                "currency": "eur",
                "payment_method": "pm_card_visa",
                "confirm": "true",
                "colour": "red",
            },
            {"Idempotency-Key": "k"},
            400,
            "parameter_unknown",
        ),
        (
            {"amount": "10", "currency": "eur", "payment_method": "pm_card_visa"},
            {"Idempotency-Key": "k"},
            400,
            "parameter_invalid",
        ),
        (
            {
                "amount": "10",
                "currency": "eur",
                "payment_method": "pm_card_visa",
                "confirm": "true",
            },
            {},
            400,
            "parameter_missing",
        ),
        (
            {"amount": "0", "currency": "eur", "payment_method": "pm_card_visa", "confirm": "true"},
            {"Idempotency-Key": "k"},
            400,
            "parameter_invalid_integer",
        ),
        (
            {
                "amount": "10",
                "currency": "euro",
                "payment_method": "pm_card_visa",
                "confirm": "true",
            },
            {"Idempotency-Key": "k"},
            400,
            "parameter_invalid",
        ),
    ],
)
def test_bad_requests_get_stripe_errors(
    stripe_client: httpx.Client,
    data: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = stripe_client.post("/v1/payment_intents", data=data, headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("authorization", ["", "Bearer sk_test_other", "Basic c2s6"])
def test_a_wrong_or_missing_key_is_401(app: object, authorization: str) -> None:
    from tests.simulator.conftest import client

    response = stripe_pay(client(app, Authorization=authorization))  # type: ignore[arg-type]

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_partial_capture_releases_the_rest(stripe_client: httpx.Client) -> None:
    intent = stripe_pay(stripe_client, manual=True, amount=1000).json()
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 1000)

    too_much = stripe_post(
        stripe_client, f"/v1/payment_intents/{intent['id']}/capture", amount_to_capture=1001
    )
    captured = stripe_post(
        stripe_client, f"/v1/payment_intents/{intent['id']}/capture", amount_to_capture=600
    )
    twice = stripe_post(stripe_client, f"/v1/payment_intents/{intent['id']}/capture")

    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_too_large"
    assert captured.status_code == 200
    body = captured.json()
    assert (body["status"], body["amount_received"], body["amount_capturable"]) == (
        "succeeded",
        600,
        0,
    )
    assert twice.status_code == 400
    assert twice.json()["error"]["code"] == "payment_intent_unexpected_state"


def test_capture_without_an_amount_takes_it_all(stripe_client: httpx.Client) -> None:
    intent = stripe_pay(stripe_client, manual=True, amount=700).json()

    captured = stripe_post(stripe_client, f"/v1/payment_intents/{intent['id']}/capture").json()

    assert (captured["status"], captured["amount_received"]) == ("succeeded", 700)


def test_cancel_releases_an_authorization_only(stripe_client: httpx.Client) -> None:
    manual = stripe_pay(stripe_client, manual=True).json()
    automatic = stripe_pay(stripe_client).json()

    canceled = stripe_post(stripe_client, f"/v1/payment_intents/{manual['id']}/cancel")
    refused = stripe_post(stripe_client, f"/v1/payment_intents/{automatic['id']}/cancel")
    capture_after = stripe_post(stripe_client, f"/v1/payment_intents/{manual['id']}/capture")
    missing = stripe_post(stripe_client, "/v1/payment_intents/pi_nope/cancel")

    assert canceled.status_code == 200
    assert (canceled.json()["status"], canceled.json()["amount_capturable"]) == ("canceled", 0)
    assert refused.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert capture_after.status_code == 400
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"


def test_refunds_up_to_what_was_captured_then_succeed(stripe_client: httpx.Client) -> None:
    intent = stripe_pay(stripe_client, amount=1000).json()

    first = stripe_post(stripe_client, "/v1/refunds", payment_intent=intent["id"], amount=600)
    too_much = stripe_post(stripe_client, "/v1/refunds", payment_intent=intent["id"], amount=401)
    rest = stripe_post(stripe_client, "/v1/refunds", payment_intent=intent["id"])
    none_left = stripe_post(stripe_client, "/v1/refunds", payment_intent=intent["id"], amount=1)

    assert first.status_code == 200
    refund = first.json()
    assert refund["id"].startswith("re_")
    assert (refund["status"], refund["amount"], refund["payment_intent"]) == (
        "pending",
        600,
        intent["id"],
    )
    assert too_much.json()["error"]["code"] == "amount_too_large"
    assert rest.json()["amount"] == 400
    assert none_left.json()["error"]["code"] == "charge_already_refunded"
    time.sleep(ASYNC_SECONDS + 0.05)
    assert stripe_client.get(f"/v1/refunds/{refund['id']}").json()["status"] == "succeeded"


def test_a_failed_refund_gives_the_amount_back(
    stripe_client: httpx.Client, admin: httpx.Client
) -> None:
    intent = stripe_pay(stripe_client, amount=1000).json()
    admin.post("/_simulator/faults", json={"refund_failure": 1})

    refund = stripe_post(stripe_client, "/v1/refunds", payment_intent=intent["id"]).json()
    time.sleep(ASYNC_SECONDS + 0.05)

    assert stripe_client.get(f"/v1/refunds/{refund['id']}").json()["status"] == "failed"
    again = stripe_post(stripe_client, "/v1/refunds", payment_intent=intent["id"])
    assert again.json()["amount"] == 1000


def test_a_payment_not_captured_cannot_be_refunded(stripe_client: httpx.Client) -> None:
    intent = stripe_pay(stripe_client, manual=True).json()

    response = stripe_post(stripe_client, "/v1/refunds", payment_intent=intent["id"])

    assert response.json()["error"]["code"] == "payment_intent_unexpected_state"


@pytest.mark.parametrize(("destination", "settled"), [("ba_ok", "paid"), ("ba_fail", "failed")])
def test_payouts_settle_by_destination(
    stripe_client: httpx.Client, destination: str, settled: str
) -> None:
    attempt = key()
    response = stripe_post(
        stripe_client,
        "/v1/payouts",
        amount=500,
        currency="eur",
        destination=destination,
        **{"metadata[moneta_attempt]": attempt},
    )
    payout = response.json()
    assert (response.status_code, payout["status"], payout["amount"]) == (200, "pending", 500)

    time.sleep(ASYNC_SECONDS + 0.05)

    found = stripe_client.get(
        "/v1/payouts/search", params={"query": f"metadata['moneta_attempt']:'{attempt}'"}
    ).json()["data"]
    assert [(p["id"], p["status"]) for p in found] == [(payout["id"], settled)]


def test_a_payout_to_an_unknown_destination_is_refused(stripe_client: httpx.Client) -> None:
    response = stripe_post(
        stripe_client, "/v1/payouts", amount=500, currency="eur", destination="ba_other"
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "destination"


def test_search_by_attempt_and_by_other_metadata(stripe_client: httpx.Client) -> None:
    intent = stripe_pay(stripe_client, idempotency_key="att_look", reference="pay_look").json()
    stripe_pay(stripe_client)

    by_attempt = stripe_client.get(
        "/v1/payment_intents/search", params={"query": "metadata['moneta_attempt']:'att_look'"}
    ).json()
    by_reference = stripe_client.get(
        "/v1/payment_intents/search", params={"query": 'metadata["moneta_reference"]:"pay_look"'}
    ).json()
    nothing = stripe_client.get(
        "/v1/payment_intents/search", params={"query": "metadata['moneta_attempt']:'att_no'"}
    ).json()
    unsupported = stripe_client.get("/v1/payment_intents/search", params={"query": "amount>1"})

    assert by_attempt["object"] == "search_result"
    assert [p["id"] for p in by_attempt["data"]] == [intent["id"]]
    assert [p["id"] for p in by_reference["data"]] == [intent["id"]]
    assert nothing["data"] == []
    assert unsupported.status_code == 400


def test_an_unknown_route_is_a_stripe_404(stripe_client: httpx.Client) -> None:
    response = stripe_client.get("/v1/customers")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
