"""The fault switches, in-process, on both formats: each applies to the next calls it is
set for, in the documented way, and the admin refuses what it does not know."""

import json
import time
from collections.abc import Callable

import httpx
import pytest

from tests.simulator.calls import adyen_pay, stripe_pay

Pay = Callable[..., httpx.Response]


@pytest.fixture(params=["stripe", "adyen"])
def provider(
    request: pytest.FixtureRequest, stripe_client: httpx.Client, adyen_client: httpx.Client
) -> tuple[str, httpx.Client, Pay]:
    if request.param == "stripe":
        return "stripe", stripe_client, stripe_pay
    return "adyen", adyen_client, adyen_pay


def charges(admin: httpx.Client, name: str) -> dict[str, int]:
    return admin.get("/_simulator/charges").json()[name]


def test_unavailable_is_503_with_nothing_done(
    provider: tuple[str, httpx.Client, Pay], admin: httpx.Client
) -> None:
    name, client, pay = provider
    admin.post("/_simulator/faults", json={"unavailable": 1})

    refused = pay(client, idempotency_key="att_u")
    accepted = pay(client, idempotency_key="att_u")

    assert refused.status_code == 503
    assert refused.headers["Stripe-Should-Retry"] == "true"
    assert accepted.status_code == 200
    assert "Idempotent-Replayed" not in accepted.headers
    assert charges(admin, name) == {"att_u": 1}


def test_rate_limited_is_429_with_retry_after(
    provider: tuple[str, httpx.Client, Pay], admin: httpx.Client
) -> None:
    name, client, pay = provider
    admin.post("/_simulator/faults", json={"rate_limited": 2, "retry_after": 7})

    answers = [pay(client, idempotency_key="att_r") for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert charges(admin, name) == {"att_r": 1}


def test_drop_after_commit_does_the_call_then_resets(
    provider: tuple[str, httpx.Client, Pay], admin: httpx.Client
) -> None:
    name, client, pay = provider
    admin.post("/_simulator/faults", json={"drop_after_commit": 1})

    with pytest.raises(httpx.ReadError):
        pay(client, idempotency_key="att_drop")
    replay = pay(client, idempotency_key="att_drop")

    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert charges(admin, name) == {"att_drop": 1}


def test_invalid_json_does_the_call_and_stores_the_right_answer(
    provider: tuple[str, httpx.Client, Pay], admin: httpx.Client
) -> None:
    name, client, pay = provider
    admin.post("/_simulator/faults", json={"invalid_json": 1})

    garbled = pay(client, idempotency_key="att_j")
    replay = pay(client, idempotency_key="att_j")

    assert garbled.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbled.content)
    assert replay.content.startswith(garbled.content)
    assert replay.json()
    assert charges(admin, name) == {"att_j": 1}


def test_latency_applies_to_every_call_until_set_to_zero(
    stripe_client: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/_simulator/faults", json={"latency_ms": 150})

    started = time.monotonic()
    intent = stripe_pay(stripe_client).json()
    stripe_client.get(f"/v1/payment_intents/{intent['id']}")
    slow = time.monotonic() - started
    admin.post("/_simulator/faults", json={"latency_ms": 0})
    started = time.monotonic()
    stripe_client.get(f"/v1/payment_intents/{intent['id']}")
    fast = time.monotonic() - started

    assert slow >= 0.3
    assert fast < 0.15


def test_faults_are_spent_one_per_call_in_order(
    stripe_client: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/_simulator/faults", json={"invalid_json": 1, "unavailable": 1, "rate_limited": 1})

    statuses = [stripe_pay(stripe_client).status_code for _ in range(2)]
    third = stripe_pay(stripe_client)
    fourth = stripe_pay(stripe_client)

    assert statuses == [503, 429]
    assert third.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        third.json()
    assert fourth.json()["status"] == "succeeded"


def test_gets_spend_no_count_fault(stripe_client: httpx.Client, admin: httpx.Client) -> None:
    intent = stripe_pay(stripe_client).json()
    admin.post("/_simulator/faults", json={"unavailable": 1})

    retrieved = stripe_client.get(f"/v1/payment_intents/{intent['id']}")

    assert retrieved.status_code == 200
    assert admin.get("/_simulator/faults").json()["unavailable"] == 1


def test_reset_forgets_every_fault(stripe_client: httpx.Client, admin: httpx.Client) -> None:
    admin.post(
        "/_simulator/faults", json={"unavailable": 3, "latency_ms": 5, "drop_after_commit": 2}
    )

    reset = admin.post("/_simulator/reset").json()

    assert set(reset.values()) == {0, 1}  # retry_after's default is 1
    assert stripe_pay(stripe_client).status_code == 200


@pytest.mark.parametrize(
    "body", [{"unavailable": -1}, {"unavailable": "1"}, {"explode": 1}, {}, [1], "x"]
)
def test_the_admin_refuses_unknown_switches(admin: httpx.Client, body: object) -> None:
    response = admin.post("/_simulator/faults", json=body)

    assert response.status_code == 400
    assert admin.get("/_simulator/faults").json()["unavailable"] == 0


def test_charges_by_reference_count_every_key_of_a_payment(
    stripe_client: httpx.Client, adyen_client: httpx.Client, admin: httpx.Client
) -> None:
    stripe_pay(stripe_client, reference="pay_a")
    stripe_pay(stripe_client, reference="pay_a")
    stripe_pay(stripe_client, "pm_card_declined", reference="pay_b")
    adyen_pay(adyen_client, reference="pay_c")

    by_reference = admin.get("/_simulator/charges", params={"by": "reference"}).json()

    assert by_reference == {"stripe": {"pay_a": 2}, "adyen": {"pay_c": 1}}
    assert admin.get("/_simulator/charges", params={"by": "nope"}).status_code == 400
