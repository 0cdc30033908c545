"""Answers no simulator switch gives: a provider (here a tiny server of the test's own,
standing for the outside world) that answers about another amount or currency, redirects,
sends an oversized or non-object body, or a malformed settlement report. Each is an
unknown outcome (or a clear error), never a success."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import Merchant
from ledger.models import LedgerEntry
from payments.attempts import attempts_recover_due
from payments.models import AttemptStatus, PaymentAttempt, PaymentStatus
from payments.payments import payment_create
from payments.providers.base import OperationKind, ResultStatus, SettlementReportError
from payments.providers.registry import adapter_get
from tests.factories import AccountFactory
from tests.payments.providers.conftest import OutsideWorld, json_answer
from tests.payments.providers.test_adapters import authorize, new_key


def stripe_intent(amount: int, currency: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": "pi_outside",
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount,
        "currency": currency,
        "status": status,
        "metadata": {},
    }


def adyen_payment(amount: int, currency: str) -> dict[str, Any]:
    return {
        "pspReference": "OUTSIDE0000000001",
        "resultCode": "Authorised",
        "status": "captured",
        "amount": {"value": amount, "currency": currency},
        "amountCaptured": {"value": amount, "currency": currency},
    }


PAYMENTS: dict[str, Callable[[int, str], dict[str, Any]]] = {
    "stripe": stripe_intent,
    "adyen": adyen_payment,
}


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
@pytest.mark.parametrize(("amount", "currency"), [(999, "eur"), (1000, "usd")])
def test_an_answer_about_another_amount_or_currency_is_unknown(
    outside_world: OutsideWorld, provider: str, amount: int, currency: str
) -> None:
    answered = PAYMENTS[provider](amount, currency if provider == "stripe" else currency.upper())
    outside_world.answer = lambda *request: json_answer(answered)
    result = authorize(adapter_get(provider))
    assert (result.status, result.failure_code) == (ResultStatus.UNKNOWN, "amount_mismatch")
    assert result.reference  # kept: a retrieve can tell what really happened


def test_a_capture_of_another_amount_is_unknown(outside_world: OutsideWorld) -> None:
    outside_world.answer = lambda *request: json_answer(stripe_intent(1000, "eur"))
    result = adapter_get("stripe").capture(
        idempotency_key=new_key(), reference="pi_outside", amount=600, currency="EUR"
    )
    assert (result.status, result.failure_code) == (ResultStatus.UNKNOWN, "amount_mismatch")


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_a_redirect_is_not_followed_and_unknown(outside_world: OutsideWorld, provider: str) -> None:
    outside_world.answer = lambda *request: (
        302,
        [("Location", "http://127.0.0.1:1/elsewhere"), ("Content-Length", "0")],
        b"",
    )
    result = authorize(adapter_get(provider))
    assert (result.status, result.failure_code) == (ResultStatus.UNKNOWN, "redirect")
    assert len(outside_world.requests) == 1  # neither followed nor retried


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_an_oversized_answer_is_refused_and_unknown(
    outside_world: OutsideWorld, settings: Any, provider: str, declared: bool
) -> None:
    settings.PROVIDER_MAX_RESPONSE_BYTES = 4096
    padded = {**PAYMENTS[provider](1000, "eur"), "padding": "x" * 10_000}
    body = json.dumps(padded).encode()

    def answer(*request: Any) -> tuple[int, list[tuple[str, str]], Any]:
        headers = [("Content-Type", "application/json")]
        if declared:
            return 200, [*headers, ("Content-Length", str(len(body)))], body
        return 200, headers, [body[:3000], body[3000:]]  # no length: read until closed

    outside_world.answer = answer
    result = authorize(adapter_get(provider))
    assert (result.status, result.failure_code) == (ResultStatus.UNKNOWN, "response_too_large")


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
@pytest.mark.parametrize("body", [b"[]", b'{"object": "list"}', b"<html>oops</html>"])
def test_a_body_that_is_not_the_object_asked_is_unknown(
    outside_world: OutsideWorld, provider: str, body: bytes
) -> None:
    outside_world.answer = lambda *request: (200, [("Content-Type", "application/json")], body)
    result = authorize(adapter_get(provider))
    assert (result.status, result.failure_code) == (ResultStatus.UNKNOWN, "invalid_response")


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_a_500_without_should_retry_is_retried_then_unknown(
    outside_world: OutsideWorld, provider: str
) -> None:
    outside_world.answer = lambda *request: (500, [("Content-Type", "text/html")], b"<h1>500</h1>")
    result = authorize(adapter_get(provider))
    assert (result.status, result.failure_code, result.http_status) == (
        ResultStatus.UNKNOWN,
        "provider_error",
        500,
    )
    assert len(outside_world.requests) == 3  # the call and its 2 retries, with its key


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_credentials_refused_are_a_temporary_error(
    outside_world: OutsideWorld, provider: str
) -> None:
    outside_world.answer = lambda *request: json_answer(
        {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}}
        if provider == "stripe"
        else {
            "status": 401,
            "errorCode": "000",
            "message": "Unauthorized",
            "errorType": "security",
        },
        status=401,
    )
    result = authorize(adapter_get(provider))
    assert (result.status, result.failure_code) == (ResultStatus.ERROR, "provider_authentication")


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_search_results_of_other_attempts_are_not_taken(
    outside_world: OutsideWorld, provider: str
) -> None:
    other = {**PAYMENTS[provider](1000, "eur"), "metadata": {"moneta_attempt": "att_other"}}
    if provider == "adyen":
        other["merchantReference"] = "att_other"
    outside_world.answer = lambda *request: json_answer(
        {"object": "search_result", "data": [other]} if provider == "stripe" else {"data": [other]}
    )
    result = adapter_get(provider).retrieve(kind=OperationKind.AUTHORIZE, idempotency_key=new_key())
    assert (result.status, result.failure_code) == (ResultStatus.UNKNOWN, "not_found")


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
@pytest.mark.parametrize(
    ("report", "complaint"),
    [
        (b"reference,type\n", "header"),
        (
            b"provider_reference,type,amount,fee,currency,status,date\n"
            b"pi_1,charge,10.00,59,EUR,succeeded,2026-12-07\n",
            "line 2: amount '10.00' is not an integer",
        ),
        (
            b"provider_reference,type,amount,fee,currency,status,date\n"
            b"pi_1,chargeback,1000,59,EUR,succeeded,2026-12-07\n",
            "line 2: type 'chargeback'",
        ),
        (
            b"provider_reference,type,amount,fee,currency,status,date\n"
            b"pi_1,charge,1000,59,EUR,succeeded\n",
            "line 2: 6 fields",
        ),
        (
            b"provider_reference,type,amount,fee,currency,status,date\n"
            b"pi_1,charge,1000,59,EUR,succeeded,07/12/2026\n",
            "line 2: date",
        ),
    ],
)
def test_a_malformed_settlement_report_is_a_clear_error(
    outside_world: OutsideWorld, provider: str, report: bytes, complaint: str
) -> None:
    outside_world.answer = lambda *request: (200, [("Content-Type", "text/csv")], report)
    with pytest.raises(SettlementReportError, match=complaint):
        adapter_get(provider).settlement_report(date=datetime.date(2026, 12, 7))


@pytest.mark.django_db
@pytest.mark.parametrize("provider", ["stripe", "adyen"])
@pytest.mark.parametrize(("amount", "currency"), [(1, "USD"), (5_000, "EUR")])
def test_the_janitor_books_no_answer_about_another_amount_or_currency(
    outside_world: OutsideWorld,
    settings: Any,
    provider: str,
    amount: int,
    currency: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """What the janitor learns by retrieve is checked as a call's answer is: a payment of
    5,000 USD the provider shows as another amount or currency stays processing, its
    attempt unknown (`amount_mismatch`), and nothing is posted."""
    settings.PAYMENT_RECOVERY_AFTER_SECONDS = 0
    wallet = AccountFactory.create(currency="USD")
    assert wallet.merchant is not None
    Merchant.objects.filter(pk=wallet.merchant.pk).update(default_provider=provider)
    wallet.merchant.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):  # the task never ran
        payment = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=5_000,
            currency="USD",
            payment_method="pm_card_visa",
        )
    attempt = PaymentAttempt.objects.get(payment=payment)
    found = PAYMENTS[provider](amount, currency.lower() if provider == "stripe" else currency)
    found["metadata"] = {"moneta_attempt": attempt.public_id}
    found["merchantReference"] = attempt.public_id
    outside_world.answer = lambda *request: json_answer(
        {"object": "search_result", "data": [found]} if provider == "stripe" else {"data": [found]}
    )

    assert attempts_recover_due() == 0

    payment.refresh_from_db()
    attempt.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert (attempt.status, attempt.failure_code) == (AttemptStatus.UNKNOWN, "amount_mismatch")
    assert payment.ledger_transaction is None
    assert not LedgerEntry.objects.filter(account=wallet).exists()


ERRORS: dict[str, dict[str, Any]] = {
    "stripe": {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such payment_intent.",
        }
    },
    "adyen": {"status": 404, "errorCode": "resource_missing", "message": "Not found."},
}


@pytest.mark.django_db
@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_a_retrieve_the_provider_refuses_fails_no_payment(
    outside_world: OutsideWorld,
    settings: Any,
    provider: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The janitor asks what became of a charge and the provider refuses the question (a
    4xx error answer): that is no decline of the charge, which may well have been made.
    The payment stays processing, its attempt unknown, never failed."""
    settings.PAYMENT_RECOVERY_AFTER_SECONDS = 0
    wallet = AccountFactory.create(currency="USD")
    assert wallet.merchant is not None
    Merchant.objects.filter(pk=wallet.merchant.pk).update(default_provider=provider)
    wallet.merchant.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):  # the task never ran
        payment = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=5_000,
            currency="USD",
            payment_method="pm_card_visa",
        )
    outside_world.answer = lambda *request: json_answer(ERRORS[provider], status=404)

    attempts_recover_due()

    payment.refresh_from_db()
    attempt = PaymentAttempt.objects.get(payment=payment)
    assert payment.status == PaymentStatus.PROCESSING
    assert attempt.status == AttemptStatus.UNKNOWN
