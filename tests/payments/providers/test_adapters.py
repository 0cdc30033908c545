"""Both adapters against the simulator, in-process and over HTTP: every test payment method
of SPEC §4.6, manual and partial capture, cancel, refunds, payouts, and retrieving an
object by its reference or by the idempotency key of the call that made it."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

from payments.providers.base import DeclineClass, OperationKind, ProviderResult, ResultStatus
from payments.providers.registry import adapter_get
from tests.payments.providers.conftest import Simulator


def new_key() -> str:
    return f"att_{uuid.uuid4().hex}"


def authorize(
    adapter: Any, payment_method: str = "pm_card_visa", *, key: str = "", capture: bool = True
) -> ProviderResult:
    result: ProviderResult = adapter.authorize(
        idempotency_key=key or new_key(),
        amount=1000,
        currency="eur",
        payment_method=payment_method,
        capture=capture,
        reference="pay_test",
    )
    return result


def settled(adapter: Any, kind: OperationKind, reference: str) -> ProviderResult:
    """The object once it is no longer pending (the simulator settles it shortly)."""
    deadline = time.monotonic() + 10
    while True:
        result: ProviderResult = adapter.retrieve(kind=kind, reference=reference)
        if result.status != ResultStatus.PENDING or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _quick_async(settings: Any) -> None:
    settings.PROVIDER_SIMULATOR_ASYNC_SECONDS = 0.2


def test_automatic_capture_succeeds_with_one_charge(adapter: Any, simulator: Simulator) -> None:
    key = new_key()
    result = authorize(adapter, key=key)
    assert result.status == ResultStatus.SUCCEEDED
    assert (result.amount, result.currency, result.amount_captured) == (1000, "EUR", 1000)
    assert result.reference and result.decline_class is None
    assert simulator.charges(adapter.name, key) == 1


def test_manual_capture_then_partial_capture(adapter: Any) -> None:
    authorized = authorize(adapter, capture=False)
    assert authorized.status == ResultStatus.REQUIRES_CAPTURE
    assert (authorized.amount_capturable, authorized.amount_captured) == (1000, 0)

    captured = adapter.capture(
        idempotency_key=new_key(), reference=authorized.reference, amount=600, currency="EUR"
    )
    assert captured.status == ResultStatus.SUCCEEDED
    assert (captured.reference, captured.amount_captured) == (authorized.reference, 600)
    now = adapter.retrieve(kind=OperationKind.CAPTURE, reference=authorized.reference)
    assert (now.status, now.amount_captured, now.amount_capturable) == (
        ResultStatus.SUCCEEDED,
        600,
        0,
    )


def test_capture_of_more_than_capturable_is_a_hard_refusal(adapter: Any) -> None:
    authorized = authorize(adapter, capture=False)
    result = adapter.capture(
        idempotency_key=new_key(), reference=authorized.reference, amount=1001, currency="EUR"
    )
    assert (result.status, result.decline_class, result.failure_code) == (
        ResultStatus.DECLINED,
        DeclineClass.HARD,
        "amount_too_large",
    )


def test_cancel_releases_the_authorization(adapter: Any) -> None:
    authorized = authorize(adapter, capture=False)
    result = adapter.cancel(idempotency_key=new_key(), reference=authorized.reference)
    assert (result.status, result.reference) == (ResultStatus.SUCCEEDED, authorized.reference)
    now = adapter.retrieve(kind=OperationKind.AUTHORIZE, reference=authorized.reference)
    assert now.status == ResultStatus.CANCELED


@pytest.mark.parametrize(
    ("payment_method", "decline_class", "failure_code"),
    [
        ("pm_card_declined", DeclineClass.HARD, "card_declined"),
        ("pm_card_insufficient_funds", DeclineClass.SOFT, "insufficient_funds"),
        ("pm_card_expired", DeclineClass.HARD, "expired_card"),
        ("pm_card_fraud", DeclineClass.FRAUD, "fraudulent"),
    ],
)
def test_declines_are_classed_and_asked_again_the_same(
    adapter: Any,
    simulator: Simulator,
    payment_method: str,
    decline_class: DeclineClass,
    failure_code: str,
) -> None:
    key = new_key()
    first = authorize(adapter, payment_method, key=key)
    assert (first.status, first.decline_class, first.failure_code) == (
        ResultStatus.DECLINED,
        decline_class,
        failure_code,
    )
    assert first.failure_message
    again = authorize(adapter, payment_method, key=key)
    assert (again.status, again.failure_code, again.reference) == (
        ResultStatus.DECLINED,
        failure_code,
        first.reference,
    )
    assert simulator.charges(adapter.name, key) == 0
    # A lost answer is found again: the refusal, not a success.
    found = adapter.retrieve(kind=OperationKind.AUTHORIZE, idempotency_key=key)
    assert (found.status, found.failure_code) == (ResultStatus.DECLINED, failure_code)


def test_flaky_card_succeeds_on_the_retry_inside_the_call(
    adapter: Any, simulator: Simulator
) -> None:
    key = new_key()
    result = authorize(adapter, "pm_card_flaky", key=key)
    assert result.status == ResultStatus.SUCCEEDED
    assert simulator.charges(adapter.name, key) == 1


def test_timeout_card_is_unknown_then_the_stored_success(
    adapter: Any, simulator: Simulator
) -> None:
    key = new_key()
    first = authorize(adapter, "pm_card_timeout", key=key)
    assert (first.status, first.decline_class, first.failure_code) == (
        ResultStatus.UNKNOWN,
        DeclineClass.TEMPORARY,
        "timeout",
    )
    again = authorize(adapter, "pm_card_timeout", key=key)
    assert (again.status, again.amount) == (ResultStatus.SUCCEEDED, 1000)
    assert simulator.charges(adapter.name, key) == 1


def test_async_card_is_pending_then_succeeds(adapter: Any) -> None:
    pending = authorize(adapter, "pm_card_async")
    assert pending.status == ResultStatus.PENDING and pending.reference
    final = settled(adapter, OperationKind.AUTHORIZE, pending.reference)
    assert (final.status, final.amount_captured) == (ResultStatus.SUCCEEDED, 1000)


def test_unknown_payment_method_is_a_hard_refusal(adapter: Any, simulator: Simulator) -> None:
    key = new_key()
    result = authorize(adapter, "pm_card_nonexistent", key=key)
    assert (result.status, result.decline_class, result.failure_code) == (
        ResultStatus.DECLINED,
        DeclineClass.HARD,
        "invalid_request",
    )
    assert simulator.charges(adapter.name, key) == 0


def test_retrieve_by_idempotency_key_finds_the_payment(adapter: Any) -> None:
    key = new_key()
    authorized = authorize(adapter, key=key, capture=False)
    found = adapter.retrieve(kind=OperationKind.AUTHORIZE, idempotency_key=key)
    assert (found.status, found.reference, found.amount) == (
        ResultStatus.REQUIRES_CAPTURE,
        authorized.reference,
        1000,
    )


def test_retrieve_by_an_unused_key_is_not_found(adapter: Any) -> None:
    for kind in (OperationKind.AUTHORIZE, OperationKind.REFUND, OperationKind.PAYOUT):
        result = adapter.retrieve(kind=kind, idempotency_key=new_key())
        assert (result.status, result.failure_code) == (ResultStatus.UNKNOWN, "not_found")


def test_the_same_key_for_another_request_is_unknown(adapter: Any, simulator: Simulator) -> None:
    key = new_key()
    authorize(adapter, key=key)
    other = adapter.authorize(
        idempotency_key=key,
        amount=2000,
        currency="EUR",
        payment_method="pm_card_visa",
        capture=True,
        reference="pay_test",
    )
    assert (other.status, other.failure_code) == (ResultStatus.UNKNOWN, "idempotency_error")
    assert simulator.charges(adapter.name, key) == 1


def test_refund_is_pending_then_succeeds_and_is_found_by_key(adapter: Any) -> None:
    payment = authorize(adapter)
    key = new_key()
    refund = adapter.refund(
        idempotency_key=key,
        payment_reference=payment.reference,
        amount=400,
        currency="EUR",
        reference="re_test",
    )
    assert (refund.status, refund.amount, refund.currency) == (ResultStatus.PENDING, 400, "EUR")
    assert refund.reference and refund.reference != payment.reference
    assert settled(adapter, OperationKind.REFUND, refund.reference).status == (
        ResultStatus.SUCCEEDED
    )
    found = adapter.retrieve(kind=OperationKind.REFUND, idempotency_key=key)
    assert (found.status, found.reference) == (ResultStatus.SUCCEEDED, refund.reference)


@pytest.mark.parametrize(
    ("destination", "outcome"),
    [("ba_ok", ResultStatus.SUCCEEDED), ("ba_fail", ResultStatus.FAILED)],
)
def test_payout_is_pending_then_settles(
    adapter: Any, destination: str, outcome: ResultStatus
) -> None:
    key = new_key()
    payout = adapter.payout(
        idempotency_key=key,
        amount=2500,
        currency="EUR",
        destination=destination,
        reference="po_test",
    )
    assert (payout.status, payout.amount) == (ResultStatus.PENDING, 2500)
    final = settled(adapter, OperationKind.PAYOUT, payout.reference)
    assert final.status == outcome
    assert outcome == ResultStatus.SUCCEEDED or final.failure_code
    found = adapter.retrieve(kind=OperationKind.PAYOUT, idempotency_key=key)
    assert (found.status, found.reference) == (outcome, payout.reference)


def test_a_forked_worker_makes_its_own_adapter(simulator_url: str, settings: Any) -> None:
    settings.PROVIDER_SIMULATOR_URL = simulator_url
    parent = adapter_get("stripe")
    assert authorize(parent).status == ResultStatus.SUCCEEDED  # a kept-alive connection
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as a prefork worker: its own connections
        try:
            child = adapter_get("stripe")
            worked = child is not parent and authorize(child).status == ResultStatus.SUCCEEDED
            os.write(write, b"1" if worked else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert adapter_get("stripe") is parent
    assert authorize(parent).status == ResultStatus.SUCCEEDED
