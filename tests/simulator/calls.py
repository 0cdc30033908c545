"""The calls the tests make, in each wire format."""

import secrets
from typing import Any

import httpx

from simulator.config import DEFAULT_ADYEN_MERCHANT_ACCOUNT


def key() -> str:
    return "att_" + secrets.token_hex(8)


def stripe_pay(
    client: httpx.Client,
    payment_method: str = "pm_card_visa",
    *,
    idempotency_key: str | None = None,
    amount: int = 1000,
    manual: bool = False,
    reference: str = "",
) -> httpx.Response:
    """POST /v1/payment_intents, confirmed, as the Stripe adapter sends it: the attempt id
    is the idempotency key and metadata[moneta_attempt]."""
    attempt = idempotency_key or key()
    data = {
        "amount": str(amount),
        "currency": "eur",
        "payment_method": payment_method,
        "confirm": "true",
        "capture_method": "manual" if manual else "automatic",
        "metadata[moneta_attempt]": attempt,
        "metadata[moneta_reference]": reference or "pay_" + attempt,
    }
    return client.post("/v1/payment_intents", data=data, headers={"Idempotency-Key": attempt})


def stripe_post(client: httpx.Client, path: str, **data: Any) -> httpx.Response:
    return client.post(path, data=data, headers={"Idempotency-Key": key()})


def adyen_pay(
    client: httpx.Client,
    payment_method: str = "pm_card_visa",
    *,
    idempotency_key: str | None = None,
    amount: int = 1000,
    manual: bool = False,
    reference: str = "",
) -> httpx.Response:
    """POST /adyen/v71/payments as the Adyen adapter sends it: the attempt id is the
    idempotency key and the `reference`."""
    attempt = idempotency_key or key()
    body: dict[str, Any] = {
        "amount": {"value": amount, "currency": "EUR"},
        "reference": attempt,
        "paymentMethod": {"type": "scheme", "storedPaymentMethodId": payment_method},
        "merchantAccount": DEFAULT_ADYEN_MERCHANT_ACCOUNT,
        "metadata": {"moneta_reference": reference or "pay_" + attempt},
    }
    if not manual:
        body["captureDelayHours"] = 0
    return client.post("/adyen/v71/payments", json=body, headers={"Idempotency-Key": attempt})


def adyen_post(client: httpx.Client, path: str, **body: Any) -> httpx.Response:
    body = {"merchantAccount": DEFAULT_ADYEN_MERCHANT_ACCOUNT, "reference": key(), **body}
    return client.post(path, json=body, headers={"Idempotency-Key": key()})


def eur(value: int) -> dict[str, Any]:
    return {"value": value, "currency": "EUR"}
