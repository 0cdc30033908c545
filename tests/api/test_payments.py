"""POST/GET /api/v1/payments, capture and cancel: the API's side (shape, errors, filters,
tenancy, idempotency). The provider's answers are applied through the service here; the
end-to-end runs with the simulator are in tests/payments/test_payments_end_to_end.py."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Account, Customer
from payments.attempts import attempt_result_apply
from payments.models import AttemptKind, Payment, PaymentAttempt
from payments.providers.base import DeclineClass, ProviderResult, ResultStatus
from tests.api.helpers import ApiClient, assert_error

PAYMENT_FIELDS = {
    "id",
    "object",
    "status",
    "amount",
    "amount_capturable",
    "amount_captured",
    "amount_refunded",
    "fee",
    "net",
    "currency",
    "destination_account",
    "customer",
    "payment_method",
    "capture_method",
    "capture_before",
    "failure_code",
    "failure_message",
    "decline_class",
    "provider",
    "provider_reference",
    "ledger_transaction",
    "description",
    "metadata",
    "attempts",
    "timeline",
    "created",
}


@pytest.fixture
def wallet(funded_account: Callable[..., Account]) -> Account:
    return funded_account()


def _body(wallet: Account, **fields: Any) -> dict[str, Any]:
    return {
        "amount": 2_000,
        "currency": "usd",
        "destination_account": wallet.public_id,
        "payment_method": "pm_card_visa",
        **fields,
    }


def _apply(payment_id: str, result: ProviderResult, kind: str = AttemptKind.AUTHORIZE) -> None:
    attempt = PaymentAttempt.objects.filter(payment__public_id=payment_id, kind=kind).latest("id")
    attempt_result_apply(attempt_id=attempt.pk, result=result)


def _authorized(api: ApiClient, wallet: Account) -> str:
    payment_id: str = api.post("payments", _body(wallet, capture_method="manual")).json()["id"]
    _apply(
        payment_id,
        ProviderResult(
            status=ResultStatus.REQUIRES_CAPTURE, reference="pi_1", amount_capturable=2_000
        ),
    )
    return payment_id


def test_create_answers_202_processing_with_every_field(
    api: ApiClient, wallet: Account, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer()
    response = api.post(
        "payments",
        _body(
            wallet,
            customer=customer.public_id,
            description="Order 7",
            metadata={"order": "7"},
        ),
    )
    assert response.status_code == 202, response.content
    payment = response.json()
    assert set(payment) == PAYMENT_FIELDS
    assert payment["id"].startswith("pay_")
    assert payment["object"] == "payment"
    assert (payment["status"], payment["amount"], payment["currency"]) == (
        "processing",
        2_000,
        "USD",
    )
    assert (payment["amount_capturable"], payment["amount_captured"]) == (0, 0)
    assert (payment["amount_refunded"], payment["fee"], payment["net"]) == (0, 0, 0)
    assert payment["destination_account"] == wallet.public_id
    assert payment["customer"] == customer.public_id
    assert (payment["payment_method"], payment["capture_method"]) == ("pm_card_visa", "automatic")
    assert payment["capture_before"] is None
    assert payment["failure_code"] is payment["decline_class"] is None
    assert payment["provider"] == "stripe"
    assert payment["metadata"] == {"order": "7"}
    [attempt] = payment["attempts"]
    assert set(attempt) == {"id", "kind", "status", "provider", "decline_class", "created"}
    assert attempt["id"].startswith("att_")
    assert (attempt["kind"], attempt["status"], attempt["provider"]) == (
        "authorize",
        "pending",
        "stripe",
    )
    [event] = payment["timeline"]
    assert event["type"] == "payment.processing" and event["id"].startswith("evt_")


@pytest.mark.parametrize("key", [None, "accepted-1"])
def test_the_202_reads_exactly_as_a_get_of_the_same_payment(
    api: ApiClient, wallet: Account, make_customer: Callable[..., Customer], key: str | None
) -> None:
    # The 202 is built from the rows just written (not read back): byte for byte what the
    # payment reads as, metadata keys in the stored order (jsonb: shortest first) included.
    metadata = {"zeta": "1", "a": "2", "mm": "3", "é": "4", "b": "5", "longest_key": "6"}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    body = _body(wallet, customer=make_customer().public_id, description="x", metadata=metadata)
    accepted = api.post("payments", body, **headers)
    assert accepted.status_code == 202, accepted.content
    shown = api.get(f"payments/{accepted.json()['id']}")
    assert shown.status_code == 200
    assert accepted.content == shown.content


def test_retrieve_shows_the_attempts_and_the_timeline_oldest_first(
    api: ApiClient, wallet: Account
) -> None:
    payment_id = _authorized(api, wallet)
    assert api.post(f"payments/{payment_id}/capture", {"amount": 1_500}).status_code == 202
    _apply(
        payment_id,
        ProviderResult(status=ResultStatus.SUCCEEDED, amount_captured=1_500),
        AttemptKind.CAPTURE,
    )

    payment = api.get(f"payments/{payment_id}").json()
    assert payment["status"] == "succeeded"
    assert (payment["amount_captured"], payment["net"], payment["amount_capturable"]) == (
        1_500,
        1_500,
        0,
    )
    assert payment["ledger_transaction"].startswith("ltx_")
    assert payment["provider_reference"] == "pi_1"
    assert [(a["kind"], a["status"]) for a in payment["attempts"]] == [
        ("authorize", "succeeded"),
        ("capture", "succeeded"),
    ]
    assert [event["type"] for event in payment["timeline"]] == [
        "payment.processing",
        "payment.requires_capture",
        "payment.succeeded",
    ]


def test_a_declined_payment_shows_why(api: ApiClient, wallet: Account) -> None:
    payment_id = api.post("payments", _body(wallet)).json()["id"]
    _apply(
        payment_id,
        ProviderResult(
            status=ResultStatus.DECLINED,
            decline_class=DeclineClass.FRAUD,
            failure_code="fraudulent",
            failure_message="The payment was refused as fraudulent.",
        ),
    )
    payment = api.get(f"payments/{payment_id}").json()
    assert (payment["status"], payment["failure_code"], payment["decline_class"]) == (
        "failed",
        "fraudulent",
        "fraud",
    )
    assert payment["failure_message"] == "The payment was refused as fraudulent."
    assert payment["attempts"][0]["decline_class"] == "fraud"


@pytest.mark.parametrize(
    ("fields", "status", "param", "code"),
    [
        ({"payment_method": "visa"}, 400, "payment_method", None),
        ({"payment_method": ""}, 400, "payment_method", None),
        ({"payment_method": "pm_" + "x" * 300}, 400, "payment_method", None),
        ({"payment_method": "pm_card\u202evisa"}, 400, "payment_method", None),
        ({"currency": "eur"}, 400, "currency", "currency_mismatch"),
        ({"amount": 0}, 400, "amount", None),
        ({"amount": "100"}, 400, "amount", None),
        ({"capture_method": "soon"}, 400, "capture_method", None),
        # Not echoed in the error: a lone surrogate cannot be written as UTF-8.
        ({"capture_method": "\ud800"}, 400, "capture_method", None),
        ({"capture_method": ["manual"]}, 400, "capture_method", None),
        ({"status": "succeeded"}, 400, "status", "parameter_unknown"),
        ({"destination_account": "acct_nothing"}, 404, "destination_account", None),
        ({"customer": "cus_nothing"}, 404, "customer", None),
    ],
)
def test_a_malformed_payment_is_refused_and_nothing_written(
    api: ApiClient,
    wallet: Account,
    fields: dict[str, Any],
    status: int,
    param: str,
    code: str | None,
) -> None:
    response = api.post("payments", _body(wallet, **fields))
    error_type = "not_found" if status == 404 else "invalid_request_error"
    assert_error(response, status, error_type, param=param, code=code)
    assert not Payment.objects.exists()


def test_another_merchants_account_is_not_found(
    api: ApiClient, other_merchant_api: ApiClient, funded_account: Callable[..., Account]
) -> None:
    theirs = funded_account(merchant=other_merchant_api.merchant)
    response = api.post("payments", _body(theirs))
    assert_error(response, 404, "not_found", param="destination_account")


@pytest.mark.parametrize("path", ["", "/capture", "/cancel"])
def test_another_merchants_payment_is_not_found(
    api: ApiClient, other_merchant_api: ApiClient, wallet: Account, path: str
) -> None:
    payment_id = _authorized(api, wallet)
    if path:
        response = other_merchant_api.post(f"payments/{payment_id}{path}", {})
    else:
        response = other_merchant_api.get(f"payments/{payment_id}")
    assert_error(response, 404, "not_found")
    assert not PaymentAttempt.objects.exclude(kind=AttemptKind.AUTHORIZE).exists()


def test_capture_of_a_processing_payment_is_refused_naming_its_status(
    api: ApiClient, wallet: Account
) -> None:
    payment_id = api.post("payments", _body(wallet)).json()["id"]
    error = assert_error(
        api.post(f"payments/{payment_id}/capture", {}),
        400,
        "invalid_request_error",
        code="payment_invalid_state",
    )
    assert "is processing" in error["message"]
    error = assert_error(
        api.post(f"payments/{payment_id}/cancel"),
        400,
        "invalid_request_error",
        code="payment_invalid_state",
    )
    assert "is processing" in error["message"]


def test_capture_of_more_than_capturable_is_refused(api: ApiClient, wallet: Account) -> None:
    payment_id = _authorized(api, wallet)
    error = assert_error(
        api.post(f"payments/{payment_id}/capture", {"amount": 2_001}),
        400,
        "invalid_request_error",
        param="amount",
        code="amount_too_large",
    )
    assert "2000 USD capturable" in error["message"]


def test_capture_past_the_deadline_is_402(api: ApiClient, wallet: Account) -> None:
    payment_id = _authorized(api, wallet)
    Payment.objects.filter(public_id=payment_id).update(
        capture_before=timezone.now() - timedelta(seconds=1)
    )
    assert_error(
        api.post(f"payments/{payment_id}/capture", {}),
        402,
        "payment_error",
        code="authorization_expired",
    )


def test_capture_and_cancel_record_attempts_and_answer_202(api: ApiClient, wallet: Account) -> None:
    payment_id = _authorized(api, wallet)
    response = api.post(f"payments/{payment_id}/cancel", raw="")  # no body at all
    assert response.status_code == 202, response.content
    payment = response.json()
    assert payment["status"] == "requires_capture"  # until the provider confirms
    assert [(a["kind"], a["status"]) for a in payment["attempts"]] == [
        ("authorize", "succeeded"),
        ("cancel", "pending"),
    ]
    assert_error(
        api.post(f"payments/{payment_id}/capture", {}),
        400,
        "invalid_request_error",
        code="payment_operation_in_flight",
    )


def test_the_same_idempotency_key_replays_and_makes_one_payment(
    api: ApiClient, wallet: Account
) -> None:
    first = api.post("payments", _body(wallet), HTTP_IDEMPOTENCY_KEY="order-1")
    again = api.post("payments", _body(wallet), HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == PaymentAttempt.objects.count() == 1
    other = api.post("payments", _body(wallet, amount=1), HTTP_IDEMPOTENCY_KEY="order-1")
    assert_error(other, 422, "idempotency_error")


def test_capture_takes_an_idempotency_key(api: ApiClient, wallet: Account) -> None:
    payment_id = _authorized(api, wallet)
    path = f"payments/{payment_id}/capture"
    first = api.post(path, {"amount": 500}, HTTP_IDEMPOTENCY_KEY="cap-1")
    again = api.post(path, {"amount": 500}, HTTP_IDEMPOTENCY_KEY="cap-1")
    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert PaymentAttempt.objects.filter(kind=AttemptKind.CAPTURE).count() == 1


def test_a_read_only_key_cannot_pay(read_only_api: ApiClient, wallet: Account) -> None:
    assert_error(read_only_api.post("payments", _body(wallet)), 403, "permission_error")


def test_list_filters(
    api: ApiClient,
    wallet: Account,
    funded_account: Callable[..., Account],
    make_customer: Callable[..., Customer],
) -> None:
    customer = make_customer()
    euros = funded_account(currency="EUR")
    first = api.post("payments", _body(wallet, customer=customer.public_id)).json()["id"]
    second = api.post("payments", _body(euros, currency="eur")).json()["id"]
    _apply(second, ProviderResult(status=ResultStatus.SUCCEEDED))

    def ids(**params: str) -> list[str]:
        response = api.get("payments", params)
        assert response.status_code == 200, response.content
        return [payment["id"] for payment in response.json()["results"]]

    assert ids() == [second, first]  # newest first
    assert ids(status="succeeded") == [second]
    assert ids(status="processing") == [first]
    assert ids(customer=customer.public_id) == [first]
    assert ids(account=euros.public_id) == [second]
    assert ids(currency="eur") == [second]
    created = Payment.objects.get(public_id=second).created_at
    assert ids(created_after=created.isoformat()) == [second]
    assert ids(created_before=created.isoformat()) == [first]
    listed = api.get("payments").json()["results"][0]
    assert [event["type"] for event in listed["timeline"]] == [
        "payment.processing",
        "payment.succeeded",
    ]
    assert_error(api.get("payments", {"status": "paid"}), 400, "invalid_request_error")


def test_a_list_costs_the_same_queries_for_one_payment_or_many(
    api: ApiClient, wallet: Account, django_assert_max_num_queries: Any
) -> None:
    for _ in range(5):
        api.post("payments", _body(wallet))
    with django_assert_max_num_queries(12):
        assert len(api.get("payments").json()["results"]) == 5
