"""Payments end to end: the API, Celery in eager mode (the demo's), the adapters and the
provider simulator in-process. Every test payment method of SPEC §4.6 on both providers
ends in the state it names, with one charge at the simulator per payment and the ledger
balanced; manual and partial capture, cancel, the authorization deadline, the janitor and
failover."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_django.fixtures import Settings

from accounts.api_keys import api_key_create
from accounts.models import Account, Merchant, SystemPurpose
from accounts.services import merchant_default_provider_set
from accounts.system import system_account_get
from payments import tasks
from payments.fees import pricing_set
from payments.models import AttemptStatus, Payment, PaymentAttempt
from payments.providers import transport
from payments.providers.circuit import circuit_force
from payments.providers.registry import PROVIDERS, adapters_reset
from tests.api.helpers import ApiClient
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations

pytestmark = pytest.mark.django_db(transaction=True)

ASYNC_SECONDS = 0.3

# SPEC §4.6: payment method → (status, failure_code, decline_class).
OUTCOMES = {
    "pm_card_visa": ("succeeded", None, None),
    "pm_card_declined": ("failed", "card_declined", "hard"),
    "pm_card_insufficient_funds": ("failed", "insufficient_funds", "soft"),
    "pm_card_expired": ("failed", "expired_card", "hard"),
    "pm_card_fraud": ("failed", "fraudulent", "fraud"),
    "pm_card_timeout": ("succeeded", None, None),
    "pm_card_flaky": ("succeeded", None, None),
}


@pytest.fixture(autouse=True)
def fast_providers(settings: Settings, tmp_path: Any) -> Iterator[None]:
    """The in-process simulator with a store of this test's own, short timeouts, quick
    retries, breakers in memory; tasks eager, as in the demo."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.PROVIDER_SIMULATOR_URL = ""
    settings.PROVIDER_SIMULATOR_STORE = str(tmp_path / "simulator.sqlite3")
    settings.PROVIDER_SIMULATOR_ASYNC_SECONDS = ASYNC_SECONDS
    settings.PROVIDER_CIRCUIT_STORAGE = "memory"
    settings.PROVIDER_RETRY_BASE_DELAY_SECONDS = 0.01
    settings.PROVIDER_RETRY_MAX_DELAY_SECONDS = 0.05
    settings.PAYMENT_TASK_BACKOFF_SECONDS = 0.01
    settings.PAYMENT_RECOVERY_AFTER_SECONDS = 0
    for provider in PROVIDERS:
        setattr(settings, f"{provider.upper()}_READ_TIMEOUT_SECONDS", 0.5)
    yield
    adapters_reset()


@pytest.fixture
def simulator_admin() -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=transport.IN_PROCESS_BASE_URL,
        transport=httpx.WSGITransport(app=transport.simulator_in_process()),
    ) as admin:
        yield admin


def _charges(admin: httpx.Client, provider: str, key: str) -> int:
    return int(admin.get("/_simulator/charges").json()[provider].get(key, 0))


@pytest.fixture(params=PROVIDERS)
def merchant(request: pytest.FixtureRequest) -> Merchant:
    merchant = MerchantFactory.create()
    return merchant_default_provider_set(merchant=merchant, provider=request.param)


@pytest.fixture
def api(merchant: Merchant) -> ApiClient:
    key, secret = api_key_create(merchant=merchant, name="test")
    return ApiClient(secret, api_key=key)


@pytest.fixture
def wallet(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant, currency="USD")


def _pay(api: ApiClient, wallet: Account, method: str, **fields: Any) -> dict[str, Any]:
    response = api.post(
        "payments",
        {
            "amount": 10_000,
            "currency": "usd",
            "destination_account": wallet.public_id,
            "payment_method": method,
            **fields,
        },
    )
    assert response.status_code == 202, response.content
    payment: dict[str, Any] = response.json()
    return payment


def _get(api: ApiClient, payment_id: str) -> dict[str, Any]:
    payment: dict[str, Any] = api.get(f"payments/{payment_id}").json()
    return payment


@pytest.mark.parametrize("method", sorted(OUTCOMES))
def test_every_test_payment_method_ends_as_spec_says(
    api: ApiClient,
    wallet: Account,
    merchant: Merchant,
    simulator_admin: httpx.Client,
    method: str,
) -> None:
    pricing_set(merchant=merchant, currency="USD", percent_bps=290, fixed_fee=30)
    payment = _pay(api, wallet, method)
    status, code, decline_class = OUTCOMES[method]

    assert (payment["status"], payment["failure_code"], payment["decline_class"]) == (
        status,
        code,
        decline_class,
    )
    assert payment["provider"] == merchant.default_provider
    [attempt] = PaymentAttempt.objects.filter(payment__public_id=payment["id"])
    charges = _charges(simulator_admin, merchant.default_provider, attempt.public_id)
    wallet.refresh_from_db()
    if status == "succeeded":
        assert (payment["fee"], payment["net"]) == (320, 9_680)
        assert payment["ledger_transaction"] is not None
        assert wallet.balance == 9_680
        assert charges == 1
        assert attempt.status == AttemptStatus.SUCCEEDED
    else:
        assert payment["ledger_transaction"] is None
        assert wallet.balance == 0
        assert charges == 0
        assert attempt.status == AttemptStatus.DECLINED
    assert attempt.latency_ms is not None
    assert invariant_violations() == {}


def test_an_async_payment_stays_processing_until_the_janitor_learns_its_outcome(
    api: ApiClient, wallet: Account, merchant: Merchant, simulator_admin: httpx.Client
) -> None:
    payment = _pay(api, wallet, "pm_card_async")
    assert payment["status"] == "processing"
    attempt = PaymentAttempt.objects.get(payment__public_id=payment["id"])
    assert attempt.status == AttemptStatus.PENDING and attempt.provider_reference

    tasks.recover_attempts.delay()  # too early: the provider has no outcome yet
    assert _get(api, payment["id"])["status"] == "processing"

    time.sleep(ASYNC_SECONDS + 0.2)
    tasks.recover_attempts.delay()
    payment = _get(api, payment["id"])
    assert payment["status"] == "succeeded"
    assert _charges(simulator_admin, merchant.default_provider, attempt.public_id) == 1
    wallet.refresh_from_db()
    assert wallet.balance == 10_000
    assert [event["type"] for event in payment["timeline"]] == [
        "payment.processing",
        "payment.succeeded",
    ]


def test_manual_capture_of_part_releases_the_rest(
    api: ApiClient, wallet: Account, simulator_admin: httpx.Client
) -> None:
    payment = _pay(api, wallet, "pm_card_visa", capture_method="manual")
    assert payment["status"] == "requires_capture"
    assert payment["amount_capturable"] == 10_000 and payment["capture_before"]
    wallet.refresh_from_db()
    assert wallet.balance == 0

    response = api.post(f"payments/{payment['id']}/capture", {"amount": 4_000})
    assert response.status_code == 202, response.content
    payment = response.json()
    assert payment["status"] == "succeeded"  # eager: the provider has answered already
    assert (payment["amount_captured"], payment["amount_capturable"], payment["net"]) == (
        4_000,
        0,
        4_000,
    )
    assert [(a["kind"], a["status"]) for a in payment["attempts"]] == [
        ("authorize", "succeeded"),
        ("capture", "succeeded"),
    ]
    wallet.refresh_from_db()
    clearing = system_account_get(currency="USD", purpose=SystemPurpose.PROVIDER_CLEARING)
    assert (wallet.balance, clearing.balance) == (4_000, -4_000)
    assert invariant_violations() == {}


def test_cancel_releases_the_authorization(api: ApiClient, wallet: Account) -> None:
    payment = _pay(api, wallet, "pm_card_visa", capture_method="manual")
    response = api.post(f"payments/{payment['id']}/cancel")
    assert response.status_code == 202, response.content
    payment = response.json()
    assert (payment["status"], payment["amount_capturable"]) == ("canceled", 0)
    assert payment["timeline"][-1]["type"] == "payment.canceled"
    wallet.refresh_from_db()
    assert wallet.balance == 0


def test_an_authorization_past_its_deadline_is_canceled_at_the_provider(
    api: ApiClient, wallet: Account
) -> None:
    payment = _pay(api, wallet, "pm_card_visa", capture_method="manual")
    Payment.objects.filter(public_id=payment["id"]).update(capture_before="2020-01-01T00:00:00Z")

    tasks.cancel_expired_authorizations.delay()

    payment = _get(api, payment["id"])
    assert payment["status"] == "canceled"
    assert [(a["kind"], a["status"]) for a in payment["attempts"]] == [
        ("authorize", "succeeded"),
        ("cancel", "succeeded"),
    ]


def test_an_open_circuit_sends_new_payments_to_the_other_provider(
    api: ApiClient, wallet: Account, merchant: Merchant
) -> None:
    preferred = merchant.default_provider
    [other] = [provider for provider in PROVIDERS if provider != preferred]
    circuit_force(preferred, state="open")

    payment = _pay(api, wallet, "pm_card_visa")

    assert (payment["status"], payment["provider"]) == ("succeeded", other)
    attempt = PaymentAttempt.objects.get(payment__public_id=payment["id"])
    assert attempt.provider == other
    assert attempt.routing_reason == f"failover: {preferred} circuit open"
