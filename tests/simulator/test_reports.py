"""The provider's fee and the daily settlement report, in both formats."""

import csv
import datetime
import io
import time

import httpx
import pytest

from simulator.engine import provider_fee
from tests.simulator.calls import adyen_pay, adyen_post, eur, stripe_pay, stripe_post
from tests.simulator.conftest import ASYNC_SECONDS


@pytest.mark.parametrize(
    ("amount", "fee"),
    [
        (1000, 59),  # 29.0
        (50, 31),  # 1.45 -> 1
        (500, 44),  # 14.5 -> 14 (half to even)
        (1500, 74),  # 43.5 -> 44 (half to even)
        (1, 30),  # 0.029 -> 0
        (99_999_999, 2_900_030),  # 2899999.971 -> 2900000
    ],
)
def test_the_provider_fee_is_2_9_percent_plus_30_half_to_even(amount: int, fee: int) -> None:
    assert provider_fee(amount) == fee


def rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.text.splitlines()[0] == (
        "provider_reference,type,amount,fee,currency,status,date"
    )
    return list(csv.DictReader(io.StringIO(response.text)))


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def test_the_stripe_report_lists_charges_refunds_and_payouts(
    stripe_client: httpx.Client, adyen_client: httpx.Client
) -> None:
    captured = stripe_pay(stripe_client, amount=1500).json()
    partly = stripe_pay(stripe_client, manual=True, amount=1000).json()
    stripe_post(stripe_client, f"/v1/payment_intents/{partly['id']}/capture", amount_to_capture=500)
    stripe_pay(stripe_client, manual=True)  # authorized only: not settled
    stripe_pay(stripe_client, "pm_card_declined")
    refund = stripe_post(stripe_client, "/v1/refunds", payment_intent=captured["id"], amount=300)
    payout = stripe_post(
        stripe_client, "/v1/payouts", amount=700, currency="eur", destination="ba_fail"
    )
    adyen_pay(adyen_client)  # the other provider's
    time.sleep(ASYNC_SECONDS + 0.05)

    report = rows(stripe_client.get("/v1/settlement_report", params={"date": today()}))

    assert report == [
        {
            "provider_reference": captured["id"],
            "type": "charge",
            "amount": "1500",
            "fee": "74",
            "currency": "EUR",
            "status": "succeeded",
            "date": today(),
        },
        {
            "provider_reference": partly["id"],
            "type": "charge",
            "amount": "500",
            "fee": "44",
            "currency": "EUR",
            "status": "succeeded",
            "date": today(),
        },
        {
            "provider_reference": refund.json()["id"],
            "type": "refund",
            "amount": "300",
            "fee": "0",
            "currency": "EUR",
            "status": "succeeded",
            "date": today(),
        },
        {
            "provider_reference": payout.json()["id"],
            "type": "payout",
            "amount": "700",
            "fee": "0",
            "currency": "EUR",
            "status": "failed",
            "date": today(),
        },
    ]


def test_the_adyen_report_and_another_day(adyen_client: httpx.Client) -> None:
    psp = adyen_pay(adyen_client, amount=1000).json()["pspReference"]
    adyen_post(adyen_client, f"/adyen/v71/payments/{psp}/refunds", amount=eur(1000))

    report = rows(adyen_client.get("/adyen/v71/settlement_report", params={"date": today()}))
    yesterday = datetime.date.fromisoformat(today()) - datetime.timedelta(days=1)
    empty = rows(adyen_client.get("/adyen/v71/settlement_report", params={"date": str(yesterday)}))

    assert [(r["provider_reference"], r["type"], r["fee"], r["status"]) for r in report] == [
        (psp, "charge", "59", "succeeded"),
        (report[1]["provider_reference"], "refund", "0", "pending"),
    ]
    assert empty == []


@pytest.mark.parametrize("date", ["", "2026-13-01", "yesterday"])
def test_a_bad_date_is_refused(
    stripe_client: httpx.Client, adyen_client: httpx.Client, date: str
) -> None:
    stripe = stripe_client.get("/v1/settlement_report", params={"date": date})
    adyen = adyen_client.get("/adyen/v71/settlement_report", params={"date": date})

    assert (stripe.status_code, stripe.json()["error"]["param"]) == (400, "date")
    assert (adyen.status_code, adyen.json()["errorType"]) == (422, "validation")
