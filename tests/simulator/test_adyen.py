"""The Adyen-like wire format, in-process: every test payment method, idempotency, captures,
cancels, refunds, payouts and lookups by reference."""

import time

import httpx
import pytest

from simulator.config import DEFAULT_ADYEN_MERCHANT_ACCOUNT
from tests.simulator.calls import adyen_pay, adyen_post, eur, key
from tests.simulator.conftest import ASYNC_SECONDS


def charges(admin: httpx.Client) -> dict[str, int]:
    return admin.get("/_simulator/charges").json()["adyen"]


def details(client: httpx.Client, psp: str) -> dict:
    return client.get(f"/adyen/v71/payments/{psp}").json()


def test_visa_is_authorised_and_captured(adyen_client: httpx.Client, admin: httpx.Client) -> None:
    response = adyen_pay(adyen_client, idempotency_key="att_visa", amount=1234)

    assert response.status_code == 200
    payment = response.json()
    assert len(payment["pspReference"]) == 16
    assert (payment["resultCode"], payment["status"]) == ("Authorised", "captured")
    assert payment["amount"] == eur(1234)
    assert payment["amountCaptured"] == eur(1234)
    assert payment["merchantReference"] == "att_visa"
    assert "refusalReason" not in payment
    assert charges(admin) == {"att_visa": 1}
    assert details(adyen_client, payment["pspReference"]) == payment


@pytest.mark.parametrize(
    ("payment_method", "code", "reason"),
    [
        ("pm_card_declined", "2", "Refused"),
        ("pm_card_insufficient_funds", "12", "Not enough balance"),
        ("pm_card_expired", "6", "Expired Card"),
        ("pm_card_fraud", "20", "FRAUD"),
    ],
)
def test_declines_are_refused_replayed_and_no_charge(
    adyen_client: httpx.Client, admin: httpx.Client, payment_method: str, code: str, reason: str
) -> None:
    response = adyen_pay(adyen_client, payment_method, idempotency_key="att_d")

    assert response.status_code == 200
    payment = response.json()
    assert (payment["resultCode"], payment["status"]) == ("Refused", "refused")
    assert (payment["refusalReasonCode"], payment["refusalReason"]) == (code, reason)
    replay = adyen_pay(adyen_client, payment_method, idempotency_key="att_d")
    assert replay.json() == payment
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert charges(admin) == {}


def test_timeout_is_recorded_then_withheld_and_replayed(
    adyen_client: httpx.Client, admin: httpx.Client
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        adyen_pay(adyen_client, "pm_card_timeout", idempotency_key="att_t")

    found = adyen_client.get("/adyen/v71/payments", params={"reference": "att_t"}).json()["data"]
    replay = adyen_pay(adyen_client, "pm_card_timeout", idempotency_key="att_t")
    assert [p["status"] for p in found] == ["captured"]
    assert (replay.status_code, replay.json()) == (200, found[0])
    assert charges(admin) == {"att_t": 1}


def test_flaky_fails_once_then_succeeds(adyen_client: httpx.Client, admin: httpx.Client) -> None:
    first = adyen_pay(adyen_client, "pm_card_flaky", idempotency_key="att_f")

    assert first.status_code == 500
    assert first.json()["errorType"] == "internal"
    assert adyen_client.get("/adyen/v71/payments", params={"reference": "att_f"}).json() == {
        "data": []
    }
    retry = adyen_pay(adyen_client, "pm_card_flaky", idempotency_key="att_f")
    assert (retry.status_code, retry.json()["resultCode"]) == (200, "Authorised")
    assert charges(admin) == {"att_f": 1}


@pytest.mark.parametrize(("manual", "settled"), [(False, "captured"), (True, "authorised")])
def test_async_is_received_then_settles_when_read(
    adyen_client: httpx.Client, manual: bool, settled: str
) -> None:
    payment = adyen_pay(adyen_client, "pm_card_async", manual=manual).json()
    assert (payment["resultCode"], payment["status"]) == ("Received", "received")

    time.sleep(ASYNC_SECONDS + 0.05)

    later = details(adyen_client, payment["pspReference"])
    assert (later["resultCode"], later["status"]) == ("Authorised", settled)


def test_same_key_other_body_is_an_idempotency_error(adyen_client: httpx.Client) -> None:
    first = adyen_pay(adyen_client, idempotency_key="att_same", amount=1000)

    other = adyen_pay(adyen_client, idempotency_key="att_same", amount=999)
    same = adyen_pay(adyen_client, idempotency_key="att_same", amount=1000)

    assert other.status_code == 422
    assert other.json() == {
        "status": 422,
        "errorCode": "idempotency_error",
        "message": other.json()["message"],
        "errorType": "validation",
    }
    assert same.json() == first.json()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"amount": {"value": "10", "currency": "EUR"}}, "parameter_invalid"),
        ({"amount": {"value": 10, "currency": "eur"}}, "parameter_invalid"),
        ({"paymentMethod": {"type": "ideal"}}, "parameter_invalid"),
        (
            {"paymentMethod": {"type": "scheme", "storedPaymentMethodId": "pm_nope"}},
            "resource_missing",
        ),
        ({"reference": ""}, "parameter_missing"),
        ({"captureDelayHours": 24}, "parameter_invalid"),
        ({"merchantAccount": "Other"}, "901"),
        ({"metadata": {"n": 1}}, "parameter_invalid"),
    ],
)
def test_bad_requests_get_adyen_errors(adyen_client: httpx.Client, body: dict, code: str) -> None:
    good = {
        "amount": eur(10),
        "reference": "att_x",
        "paymentMethod": {"type": "scheme", "storedPaymentMethodId": "pm_card_visa"},
        "merchantAccount": DEFAULT_ADYEN_MERCHANT_ACCOUNT,
    }
    response = adyen_client.post(
        "/adyen/v71/payments", json={**good, **body}, headers={"Idempotency-Key": key()}
    )

    assert response.status_code == 422
    assert (response.json()["errorCode"], response.json()["errorType"]) == (code, "validation")


def test_a_body_that_is_not_json_is_refused(adyen_client: httpx.Client) -> None:
    response = adyen_client.post(
        "/adyen/v71/payments", content=b"{not json", headers={"Idempotency-Key": key()}
    )

    assert (response.status_code, response.json()["errorCode"]) == (422, "invalid_json")


@pytest.mark.parametrize("api_key", ["", "adyen_other"])
def test_a_wrong_or_missing_key_is_401(app: object, api_key: str) -> None:
    from tests.simulator.conftest import client

    response = adyen_pay(client(app, **{"X-API-Key": api_key}))  # type: ignore[arg-type]

    assert response.status_code == 401
    assert response.json()["errorType"] == "security"


def test_partial_capture_releases_the_rest(adyen_client: httpx.Client) -> None:
    psp = adyen_pay(adyen_client, manual=True, amount=1000).json()["pspReference"]
    assert details(adyen_client, psp)["amountCapturable"] == eur(1000)

    too_much = adyen_post(adyen_client, f"/adyen/v71/payments/{psp}/captures", amount=eur(1001))
    other_currency = adyen_post(
        adyen_client, f"/adyen/v71/payments/{psp}/captures", amount={"value": 5, "currency": "USD"}
    )
    captured = adyen_post(adyen_client, f"/adyen/v71/payments/{psp}/captures", amount=eur(600))
    twice = adyen_post(adyen_client, f"/adyen/v71/payments/{psp}/captures", amount=eur(1))

    assert (too_much.status_code, too_much.json()["errorCode"]) == (422, "amount_too_large")
    assert other_currency.status_code == 422
    assert captured.status_code == 201
    capture = captured.json()
    assert (capture["status"], capture["paymentPspReference"], capture["amount"]) == (
        "received",
        psp,
        eur(600),
    )
    assert capture["pspReference"] != psp
    after = details(adyen_client, psp)
    assert (after["status"], after["amountCaptured"], after["amountCapturable"]) == (
        "captured",
        eur(600),
        eur(0),
    )
    assert twice.json()["errorCode"] == "unexpected_state"


def test_cancel_releases_an_authorisation_only(adyen_client: httpx.Client) -> None:
    manual = adyen_pay(adyen_client, manual=True).json()["pspReference"]
    automatic = adyen_pay(adyen_client).json()["pspReference"]

    canceled = adyen_post(adyen_client, f"/adyen/v71/payments/{manual}/cancels")
    refused = adyen_post(adyen_client, f"/adyen/v71/payments/{automatic}/cancels")
    missing = adyen_post(adyen_client, "/adyen/v71/payments/NOPE/cancels")

    assert (canceled.status_code, canceled.json()["status"]) == (201, "received")
    assert details(adyen_client, manual)["status"] == "cancelled"
    assert (refused.status_code, refused.json()["errorCode"]) == (422, "unexpected_state")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "resource_missing")


def test_refunds_up_to_what_was_captured_then_refunded(adyen_client: httpx.Client) -> None:
    psp = adyen_pay(adyen_client, amount=1000).json()["pspReference"]
    attempt = key()

    first = adyen_post(
        adyen_client, f"/adyen/v71/payments/{psp}/refunds", amount=eur(600), reference=attempt
    )
    too_much = adyen_post(adyen_client, f"/adyen/v71/payments/{psp}/refunds", amount=eur(401))

    assert first.status_code == 201
    refund = first.json()
    assert (refund["status"], refund["paymentPspReference"], refund["amount"]) == (
        "received",
        psp,
        eur(600),
    )
    assert too_much.json()["errorCode"] == "amount_too_large"
    time.sleep(ASYNC_SECONDS + 0.05)
    by_reference = adyen_client.get("/adyen/v71/refunds", params={"reference": attempt}).json()
    assert [r["status"] for r in by_reference["data"]] == ["refunded"]
    assert adyen_client.get(f"/adyen/v71/refunds/{refund['pspReference']}").json()["status"] == (
        "refunded"
    )
    assert details(adyen_client, psp)["amountRefunded"] == eur(600)


@pytest.mark.parametrize(("token", "settled"), [("ba_ok", "paid"), ("ba_fail", "failed")])
def test_payouts_settle_by_bank_token(adyen_client: httpx.Client, token: str, settled: str) -> None:
    attempt = key()
    response = adyen_post(
        adyen_client,
        "/adyen/v71/payouts",
        amount=eur(500),
        bankAccount={"token": token},
        reference=attempt,
    )
    payout = response.json()
    assert (response.status_code, payout["resultCode"], payout["status"]) == (
        200,
        "Received",
        "received",
    )

    time.sleep(ASYNC_SECONDS + 0.05)

    assert adyen_client.get(f"/adyen/v71/payouts/{payout['pspReference']}").json()["status"] == (
        settled
    )
    found = adyen_client.get("/adyen/v71/payouts", params={"reference": attempt}).json()["data"]
    assert [p["pspReference"] for p in found] == [payout["pspReference"]]


def test_a_payout_to_an_unknown_bank_account_is_refused(adyen_client: httpx.Client) -> None:
    response = adyen_post(
        adyen_client, "/adyen/v71/payouts", amount=eur(500), bankAccount={"token": "ba_x"}
    )

    assert (response.status_code, response.json()["errorCode"]) == (422, "resource_missing")


def test_objects_of_one_provider_are_not_found_through_the_other(
    adyen_client: httpx.Client, stripe_client: httpx.Client
) -> None:
    from tests.simulator.calls import stripe_pay

    pi = stripe_pay(stripe_client).json()["id"]
    psp = adyen_pay(adyen_client).json()["pspReference"]

    assert adyen_client.get(f"/adyen/v71/payments/{pi}").status_code == 404
    assert stripe_client.get(f"/v1/payment_intents/{psp}").status_code == 404
