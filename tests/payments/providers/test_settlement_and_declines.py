"""The settlement report fetched and parsed on both adapters, and the decline table."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from payments.providers.base import (
    DeclineClass,
    ResultStatus,
    SettlementLine,
    SettlementReportError,
)
from payments.providers.declines import DECLINES, decline_lookup
from payments.providers.results import result_declined
from payments.providers.settlement import settlement_report_parse
from tests.payments.providers.conftest import Simulator
from tests.payments.providers.test_adapters import authorize


def test_the_settlement_report_lists_the_charge(adapter: Any, simulator: Simulator) -> None:
    payment = authorize(adapter)
    today = datetime.datetime.now(datetime.UTC).date()
    [line] = [
        line
        for line in adapter.settlement_report(date=today)
        if line.reference == payment.reference
    ]
    assert line == SettlementLine(
        reference=payment.reference,
        type="charge",
        amount=1000,
        fee=59,  # 2.9 % + 30
        currency="EUR",
        status="succeeded",
        date=today,
    )


def test_a_report_with_only_its_header_has_no_lines() -> None:
    header = "provider_reference,type,amount,fee,currency,status,date\n"
    assert settlement_report_parse(header, provider="stripe") == []


def test_a_report_with_an_unterminated_quote_is_a_clear_error() -> None:
    report = 'provider_reference,type,amount,fee,currency,status,date\n"pi_1,charge\n'
    with pytest.raises(SettlementReportError, match="stripe settlement report line"):
        settlement_report_parse(report, provider="stripe")


@pytest.mark.parametrize(
    ("provider", "code", "decline_class", "failure_code"),
    [
        ("stripe", "generic_decline", DeclineClass.HARD, "card_declined"),
        ("stripe", "insufficient_funds", DeclineClass.SOFT, "insufficient_funds"),
        ("stripe", "expired_card", DeclineClass.HARD, "expired_card"),
        ("stripe", "fraudulent", DeclineClass.FRAUD, "fraudulent"),
        ("adyen", "2", DeclineClass.HARD, "card_declined"),
        ("adyen", "12", DeclineClass.SOFT, "insufficient_funds"),
        ("adyen", "6", DeclineClass.HARD, "expired_card"),
        ("adyen", "20", DeclineClass.FRAUD, "fraudulent"),
    ],
)
def test_both_providers_map_to_the_same_classes(
    provider: str, code: str, decline_class: DeclineClass, failure_code: str
) -> None:
    decline = decline_lookup(provider=provider, code=code)
    assert (decline.decline_class, decline.failure_code) == (decline_class, failure_code)


def test_an_unknown_code_is_a_hard_card_declined_naming_the_code() -> None:
    decline = decline_lookup(provider="adyen", code="99")
    assert (decline.decline_class, decline.failure_code) == (DeclineClass.HARD, "card_declined")
    assert "provider code 99" in decline.message


def test_a_temporary_refusal_is_an_error_to_retry() -> None:
    result = result_declined(provider="adyen", code="9")  # Issuer Unavailable
    assert (result.status, result.decline_class, result.failure_code) == (
        ResultStatus.ERROR,
        DeclineClass.TEMPORARY,
        "issuer_unavailable",
    )


def test_every_entry_has_a_code_and_a_message() -> None:
    for (provider, code), decline in DECLINES.items():
        assert provider in ("stripe", "adyen") and code
        assert decline.failure_code and decline.message.endswith(".")
