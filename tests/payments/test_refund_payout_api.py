"""POST/GET /api/v1/refunds and /api/v1/payouts: 202 `pending`, the list filters and
retrieve, tenancy, idempotency keys, the error format (400, 402, 404), nothing written on a
refusal. The provider is the simulator in-process; tasks eager, as in the demo."""

from typing import Any

import pytest

from accounts.api_keys import api_key_create
from accounts.models import Account, Merchant
from payments.models import Payment, Payout, Refund
from payments.refunds import refund_create
from tests.api.helpers import ApiClient, assert_error
from tests.factories import AccountFactory, MerchantFactory, fund
from tests.payments.held_helpers import janitor_round, succeeded_payment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


@pytest.fixture
def merchant() -> Merchant:
    return MerchantFactory.create()


@pytest.fixture
def api(merchant: Merchant) -> ApiClient:
    key, secret = api_key_create(merchant=merchant, name="test")
    return ApiClient(secret, api_key=key)


@pytest.fixture
def wallet(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant, currency="USD")


@pytest.fixture
def payment(wallet: Account, django_capture_on_commit_callbacks: Any) -> Payment:
    return succeeded_payment(wallet, 10_000, django_capture_on_commit_callbacks)


def _counts() -> tuple[int, int, int]:
    return Refund.objects.count(), Payout.objects.count(), Payment.objects.count()


def test_a_refund_is_accepted_pending_then_listed_and_retrieved(
    api: ApiClient, payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "refunds",
            {"payment": payment.public_id, "amount": 4_000, "reason": "requested_by_customer"},
            HTTP_IDEMPOTENCY_KEY="refund-1",
        )
    assert response.status_code == 202, response.content
    refund = response.json()
    assert refund["id"].startswith("re_") and refund["object"] == "refund"
    assert (refund["status"], refund["amount"], refund["currency"]) == ("pending", 4_000, "USD")
    assert (refund["payment"], refund["reason"]) == (payment.public_id, "requested_by_customer")
    assert refund["ledger_transaction"] is None
    # Its task ran on commit (after the response, in a test's transaction).
    refund = api.get(f"refunds/{refund['id']}").json()
    assert refund["status"] == "pending" and refund["provider_reference"]

    # The same key again: the first answer, nothing more held or sent.
    again = api.post(
        "refunds",
        {"payment": payment.public_id, "amount": 4_000, "reason": "requested_by_customer"},
        HTTP_IDEMPOTENCY_KEY="refund-1",
    )
    assert again.status_code == 202 and again.json()["id"] == refund["id"]
    assert Refund.objects.count() == 1
    assert api.get(f"payments/{payment.public_id}").json()["amount_refunded"] == 4_000

    janitor_round(django_capture_on_commit_callbacks)
    done = api.get(f"refunds/{refund['id']}").json()
    assert (done["status"], done["ledger_transaction"] is not None) == ("succeeded", True)
    with django_capture_on_commit_callbacks(execute=True):
        rest = api.post("refunds", {"payment": payment.public_id}).json()  # the 6,000 left
    assert rest["amount"] == 6_000

    listed = api.get("refunds", {"payment": payment.public_id}).json()["results"]
    assert [r["id"] for r in listed] == [rest["id"], refund["id"]]  # newest first
    succeeded = api.get("refunds", {"status": "succeeded"}).json()["results"]
    assert [r["id"] for r in succeeded] == [refund["id"]]
    assert api.get("refunds", {"payment": "pay_nothing"}).json()["results"] == []


def test_refund_refusals_are_clear_and_write_nothing(
    api: ApiClient, payment: Payment, wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    before = _counts()
    too_much = api.post("refunds", {"payment": payment.public_id, "amount": 10_001})
    error = assert_error(too_much, 400, "invalid_request_error", code="amount_too_large")
    assert "10000 USD is left to refund" in error["message"]
    assert_error(
        api.post("refunds", {"payment": payment.public_id, "reason": "bored"}),
        400,
        "invalid_request_error",
        param="reason",
    )
    assert_error(
        api.post("refunds", {"payment": payment.public_id, "amount": 10.5}),
        400,
        "invalid_request_error",
        param="amount",
    )
    # Another merchant's payment answers as a missing one does.
    stranger = succeeded_payment(
        AccountFactory.create(merchant=MerchantFactory.create()),
        1_000,
        django_capture_on_commit_callbacks,
    )
    assert_error(
        api.post("refunds", {"payment": stranger.public_id}), 404, "not_found", param="payment"
    )
    assert_error(api.get(f"refunds/{_refund_of(stranger).public_id}"), 404, "not_found")
    # A manual-capture payment waiting for its capture.
    with django_capture_on_commit_callbacks(execute=True):
        authorized = api.post(
            "payments",
            {
                "amount": 500,
                "currency": "usd",
                "destination_account": wallet.public_id,
                "payment_method": "pm_card_visa",
                "capture_method": "manual",
            },
        ).json()
    assert api.get(f"payments/{authorized['id']}").json()["status"] == "requires_capture"
    error = assert_error(
        api.post("refunds", {"payment": authorized["id"]}),
        400,
        "invalid_request_error",
        code="payment_invalid_state",
    )
    assert "is requires_capture" in error["message"]
    # Only what the test made itself: the stranger's payment and refund, the authorization.
    assert _counts() == (before[0] + 1, before[1], before[2] + 2)


def _refund_of(payment: Payment) -> Refund:
    return refund_create(merchant=payment.merchant, payment=payment, amount=100)


def test_a_refund_without_funds_is_402_insufficient_funds(
    api: ApiClient, payment: Payment, wallet: Account
) -> None:
    savings = AccountFactory.create(merchant=wallet.merchant, currency="USD")
    api.post(
        "transfers",
        {
            "source_account": wallet.public_id,
            "destination_account": savings.public_id,
            "amount": 9_999,
            "currency": "usd",
        },
    )
    before = _counts()
    response = api.post("refunds", {"payment": payment.public_id, "amount": 2})
    assert_error(response, 402, "payment_error", code="insufficient_funds")
    assert _counts() == before
    assert api.get(f"payments/{payment.public_id}").json()["amount_refunded"] == 0


def test_a_payout_is_accepted_pending_with_its_amount_held(
    api: ApiClient, wallet: Account, django_capture_on_commit_callbacks: Any
) -> None:
    fund(wallet, 5_000)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "payouts",
            {
                "source_account": wallet.public_id,
                "amount": 3_000,
                "currency": "usd",
                "destination": "ba_ok",
                "description": "Weekly",
                "metadata": {"batch": "7"},
            },
            HTTP_IDEMPOTENCY_KEY="payout-1",
        )
    assert response.status_code == 202, response.content
    payout = response.json()
    assert payout["id"].startswith("po_") and payout["object"] == "payout"
    assert (payout["status"], payout["amount"], payout["destination"]) == (
        "pending",
        3_000,
        "ba_ok",
    )
    assert (payout["description"], payout["metadata"]) == ("Weekly", {"batch": "7"})
    balance = api.get(f"accounts/{wallet.public_id}/balance").json()
    assert (balance["balance"], balance["available"]) == (5_000, 2_000)

    janitor_round(django_capture_on_commit_callbacks)
    assert api.get(f"payouts/{payout['id']}").json()["status"] == "paid"
    balance = api.get(f"accounts/{wallet.public_id}/balance").json()
    assert (balance["balance"], balance["available"]) == (2_000, 2_000)
    listed = api.get("payouts", {"account": wallet.public_id, "status": "paid"}).json()
    assert [p["id"] for p in listed["results"]] == [payout["id"]]

    before = _counts()
    assert_error(
        api.post(
            "payouts",
            {
                "source_account": wallet.public_id,
                "amount": 2_001,
                "currency": "usd",
                "destination": "ba_ok",
            },
        ),
        402,
        "payment_error",
        code="insufficient_funds",
    )
    iban = "DE89370400440532013000"
    error = assert_error(
        api.post(
            "payouts",
            {
                "source_account": wallet.public_id,
                "amount": 100,
                "currency": "usd",
                "destination": iban,
            },
        ),
        400,
        "invalid_request_error",
        code="invalid_destination",
        param="destination",
    )
    assert iban not in error["message"]
    other = AccountFactory.create(merchant=MerchantFactory.create())
    assert_error(
        api.post(
            "payouts",
            {
                "source_account": other.public_id,
                "amount": 100,
                "currency": "usd",
                "destination": "ba_ok",
            },
        ),
        404,
        "not_found",
        param="source_account",
    )
    assert _counts() == before
    assert not Payout.objects.filter(destination=iban).exists()
