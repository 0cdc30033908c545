"""FX: reference rates set by finance, merchants' quotes, and cross-currency transfers that
convert only at a quote (never at a rate the caller names)."""

from datetime import timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Account, Merchant, SystemPurpose
from accounts.services import merchant_fx_spread_set
from accounts.system import system_account_get
from audit.models import AuditLog
from core.amounts import MAX_AMOUNT
from core.exceptions import ValidationError
from payments.fx import fx_convert, fx_quote_create, fx_rate_set
from payments.models import FxQuote, FxRate, Transfer, TransferStatus
from payments.services import transfer_create
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchant() -> Merchant:
    return MerchantFactory.create()


@pytest.fixture
def usd(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant, balance=10_000)


@pytest.fixture
def jpy(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant, currency="JPY")


def quote(merchant: Merchant, pair: str = "USD/JPY", rate: str | None = "151.37") -> FxQuote:
    source, destination = pair.split("/")
    if rate is not None:
        fx_rate_set(source_currency=source, destination_currency=destination, rate=rate)
    return fx_quote_create(
        merchant=merchant, source_currency=source, destination_currency=destination
    )


# --- reference rates ---------------------------------------------------------------------


def test_a_reference_rate_is_set_with_its_time_and_audited() -> None:
    before = timezone.now()

    fx_rate = fx_rate_set(source_currency="usd", destination_currency="eur", rate="0.92")

    assert (fx_rate.source_currency, fx_rate.destination_currency) == ("USD", "EUR")
    assert fx_rate.rate == Decimal("0.92")
    assert before <= fx_rate.created_at <= timezone.now()
    row = AuditLog.objects.get(action="fx_rate.set")
    assert row.object_id == "USD/EUR"
    assert (row.old_values, row.new_values["rate"]) == ({}, "0.92")


def test_a_new_rate_replaces_the_old_one_and_the_audit_row_says_which() -> None:
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.92")
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.93")

    assert FxRate.objects.count() == 2
    newest = AuditLog.objects.filter(action="fx_rate.set").latest("id")
    assert (newest.old_values, newest.new_values["rate"]) == ({"rate": "0.92"}, "0.93")


@pytest.mark.parametrize(
    "rate",
    [
        Decimal(0),
        Decimal(-1),
        Decimal("NaN"),
        Decimal("Infinity"),
        1.1,
        "abc",
        "",
        Decimal("1.0000000000001"),  # 13 decimal places
        Decimal("1E-13"),
        Decimal(10) ** 12,
        Decimal("1E+30"),
    ],
)
def test_a_rate_must_be_a_positive_decimal_the_columns_store_exactly(rate: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        fx_rate_set(source_currency="USD", destination_currency="EUR", rate=rate)

    assert refused.value.param == "rate"
    assert not FxRate.objects.exists()


@pytest.mark.parametrize("rate", ["0.923456789012", "1.500000000000000000", "999999.5"])
def test_a_rate_the_columns_store_exactly_is_accepted(rate: str) -> None:
    fx_rate = fx_rate_set(source_currency="USD", destination_currency="EUR", rate=rate)

    assert FxRate.objects.get(pk=fx_rate.pk).rate == Decimal(rate)


@pytest.mark.parametrize(
    ("source", "destination", "param"),
    [
        ("USD", "USD", "destination_currency"),
        ("USX", "EUR", "source_currency"),
        ("USD", "", "destination_currency"),
    ],
)
def test_a_rate_needs_two_real_currencies(source: str, destination: str, param: str) -> None:
    with pytest.raises(ValidationError) as refused:
        fx_rate_set(source_currency=source, destination_currency=destination, rate="1.1")

    assert refused.value.param == param


def test_set_fx_rate_sets_the_pair_and_audits_the_operator() -> None:
    out = StringIO()

    call_command(
        "set_fx_rate",
        "--pair",
        "USD/EUR",
        "--rate",
        "0.92",
        "--actor",
        "fin@example.com",
        stdout=out,
    )

    assert "USD/EUR is now 0.92 (set at" in out.getvalue()
    row = AuditLog.objects.get(action="fx_rate.set")
    assert (row.actor_type, row.actor) == ("command", "fin@example.com")
    assert FxRate.objects.get().set_by == "fin@example.com"


@pytest.mark.parametrize(
    ("pair", "rate", "message"),
    [
        ("USDEUR", "0.92", "--pair must be SOURCE/DESTINATION"),
        ("USD/", "0.92", "--pair must be SOURCE/DESTINATION"),
        ("USD/EUR", "-1", "rate must be a positive decimal"),
        ("USD/XYZ", "1", "a supported ISO 4217 code"),
    ],
)
def test_set_fx_rate_refuses_bad_input_clearly(pair: str, rate: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("set_fx_rate", "--pair", pair, "--rate", rate)

    assert not FxRate.objects.exists()


# --- quotes -------------------------------------------------------------------------------


def test_a_quote_is_the_newest_reference_rate_less_the_merchants_spread(
    merchant: Merchant, settings: Any
) -> None:
    settings.FX_QUOTE_TTL_SECONDS = 120
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.90")
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.92")
    merchant.fx_spread_bps = 150  # 1.5 %
    merchant.save()
    before = timezone.now()

    offered = quote(merchant, "USD/EUR", rate=None)

    assert offered.public_id.startswith("fxq_")
    assert offered.rate == Decimal("0.9062")  # 0.92 × (1 − 0.015)
    assert offered.spread_bps == 150
    assert offered.reference_rate.rate == Decimal("0.92")
    assert before + timedelta(seconds=120) <= offered.expires_at
    assert offered.expires_at <= timezone.now() + timedelta(seconds=120)
    assert AuditLog.objects.filter(action="fx_quote.created", object_id=offered.public_id).exists()


def test_a_quote_rounds_the_spread_down_in_the_platforms_favour(merchant: Merchant) -> None:
    merchant.fx_spread_bps = 1
    merchant.save()

    offered = quote(merchant, "USD/EUR", rate="0.333333333333")

    # 0.333333333333 × 0.9999 = 0.3332999999996667 → 0.333299999999
    assert offered.rate == Decimal("0.333299999999")


def test_no_reference_rate_for_the_pair_means_no_quote(merchant: Merchant) -> None:
    fx_rate_set(source_currency="EUR", destination_currency="USD", rate="1.08")

    with pytest.raises(ValidationError) as refused:
        quote(merchant, "USD/EUR", rate=None)  # only the other direction is set

    assert refused.value.code == "fx_rate_unavailable"
    assert not FxQuote.objects.exists()


# --- cross-currency transfers -------------------------------------------------------------


def test_a_cross_currency_transfer_converts_at_its_quote_through_the_fx_accounts(
    merchant: Merchant, usd: Account, jpy: Account
) -> None:
    offered = quote(merchant)

    transfer = transfer_create(
        merchant=merchant, source=usd, destination=jpy, amount=1_000, fx_quote=offered
    )

    usd.refresh_from_db()
    jpy.refresh_from_db()
    fx_usd = system_account_get(currency="USD", purpose=SystemPurpose.FX)
    fx_jpy = system_account_get(currency="JPY", purpose=SystemPurpose.FX)
    # 10.00 USD at 151.37 JPY per USD is 1,513.7 JPY, which has no minor unit: 1,513, the
    # fraction stays with the platform.
    assert (transfer.destination_amount, transfer.destination_currency) == (1_513, "JPY")
    assert (transfer.fx_quote, transfer.fx_rate) == (offered, Decimal("151.37"))
    assert (usd.balance, jpy.balance) == (9_000, 1_513)
    assert (fx_usd.balance, fx_jpy.balance) == (1_000, -1_513)
    assert invariant_violations() == {}


def test_a_quote_serves_several_transfers_until_it_expires(
    merchant: Merchant, usd: Account, jpy: Account
) -> None:
    offered = quote(merchant)

    for _ in range(3):
        transfer_create(
            merchant=merchant, source=usd, destination=jpy, amount=100, fx_quote=offered
        )

    assert Transfer.objects.filter(fx_quote=offered, status=TransferStatus.SUCCEEDED).count() == 3


def test_the_service_takes_no_rate_from_the_caller(
    merchant: Merchant, usd: Account, jpy: Account
) -> None:
    # The review's exploit: 1 US cent at a caller-chosen rate of 10^11 JPY per USD.
    with pytest.raises(TypeError):
        transfer_create(  # type: ignore[call-arg]
            merchant=merchant, source=usd, destination=jpy, amount=1, fx_rate=Decimal(10**11)
        )

    assert not Transfer.objects.exists()


def refused_transfer(
    merchant: Merchant, source: Account, destination: Account, **kwargs: Any
) -> ValidationError:
    before = Transfer.objects.count()
    with pytest.raises(ValidationError) as refused:
        transfer_create(
            merchant=merchant, source=source, destination=destination, amount=100, **kwargs
        )
    assert Transfer.objects.count() == before
    return refused.value


def test_different_currencies_need_a_quote(merchant: Merchant, usd: Account, jpy: Account) -> None:
    refused = refused_transfer(merchant, usd, jpy)

    assert (refused.code, refused.param) == ("parameter_missing", "fx_quote")


def test_a_quote_is_refused_between_accounts_in_one_currency(
    merchant: Merchant, usd: Account
) -> None:
    other_usd = AccountFactory.create(merchant=merchant)

    refused = refused_transfer(merchant, usd, other_usd, fx_quote=quote(merchant))

    assert refused.param == "fx_quote"


def test_an_expired_quote_is_refused(merchant: Merchant, usd: Account, jpy: Account) -> None:
    offered = quote(merchant)
    FxQuote.objects.filter(pk=offered.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    offered.refresh_from_db()

    refused = refused_transfer(merchant, usd, jpy, fx_quote=offered)

    assert (refused.code, refused.param) == ("fx_quote_expired", "fx_quote")


@pytest.mark.parametrize("pair", ["JPY/USD", "USD/EUR"])
def test_a_quote_for_another_pair_is_refused(
    merchant: Merchant, usd: Account, jpy: Account, pair: str
) -> None:
    refused = refused_transfer(merchant, usd, jpy, fx_quote=quote(merchant, pair, rate="0.5"))

    assert (refused.code, refused.param) == ("fx_quote_mismatch", "fx_quote")


def test_another_merchants_quote_is_refused(merchant: Merchant, usd: Account, jpy: Account) -> None:
    theirs = quote(MerchantFactory.create())

    refused = refused_transfer(merchant, usd, jpy, fx_quote=theirs)

    assert (refused.code, refused.param) == ("fx_quote_missing", "fx_quote")


def test_a_converted_amount_that_rounds_to_zero_is_refused(
    merchant: Merchant, usd: Account
) -> None:
    eur = AccountFactory.create(merchant=merchant, currency="EUR")
    offered = quote(merchant, "USD/EUR", rate="0.001")

    with pytest.raises(ValidationError, match="rounds to zero"):
        transfer_create(merchant=merchant, source=usd, destination=eur, amount=1, fx_quote=offered)


def test_a_converted_amount_above_the_maximum_is_refused_clearly(
    merchant: Merchant, usd: Account, jpy: Account
) -> None:
    offered = quote(merchant, rate="100000000001")  # 10 USD → over 10^12 yen

    with pytest.raises(ValidationError, match="the converted amount exceeds the maximum") as error:
        transfer_create(
            merchant=merchant, source=usd, destination=jpy, amount=1_000, fx_quote=offered
        )

    assert error.value.param == "amount"
    assert not Transfer.objects.exists()


# --- conversion ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "source", "destination", "rate", "expected"),
    [
        (1_000, "USD", "KWD", Decimal("0.3071"), 3_071),  # 10.00 USD → 3.071 KWD
        (1_000, "JPY", "USD", Decimal("0.0066"), 660),  # 1,000 JPY → 6.60 USD
        (5, "USD", "EUR", Decimal("0.5"), 2),  # 2.5 cents: rounded down
        (7, "USD", "EUR", Decimal("0.5"), 3),  # 3.5 cents: rounded down
        (1, "USD", "JPY", Decimal("150"), 1),  # 1.5 yen: rounded down
    ],
)
def test_fx_conversion_respects_each_currency_exponent(
    amount: int, source: str, destination: str, rate: Decimal, expected: int
) -> None:
    converted = fx_convert(
        amount=amount, source_currency=source, destination_currency=destination, rate=rate
    )

    assert converted == expected


def test_fx_conversion_does_not_depend_on_the_decimal_context() -> None:
    rate = Decimal("123456789012.123456789012")
    # 10^12 cents at that rate in fils (1,000 to the dinar), in exact rational arithmetic.
    exact = Fraction(MAX_AMOUNT) * Fraction(rate) * 1_000 / 100
    assert exact.denominator == 1

    with localcontext() as narrow:
        narrow.prec = 6
        converted = fx_convert(
            amount=MAX_AMOUNT, source_currency="USD", destination_currency="KWD", rate=rate
        )

    assert converted == exact.numerator


@pytest.mark.parametrize("spread", [-1, 10_000, 1.5, "100", True])
def test_a_merchants_spread_is_whole_basis_points_below_100_percent(
    merchant: Merchant, spread: Any
) -> None:
    with pytest.raises(ValidationError) as refused:
        merchant_fx_spread_set(merchant=merchant, spread_bps=spread)

    assert refused.value.param == "fx_spread_bps"
    merchant.refresh_from_db()
    assert merchant.fx_spread_bps == 0


def test_many_small_transfers_never_receive_more_than_one_large_one(
    merchant: Merchant, usd: Account, jpy: Account
) -> None:
    # The review's probe: 100 transfers of 1 cent at 150 JPY per USD credited 200 JPY
    # (1.5 rounded half to even, to 2, each time) against 150 for one transfer of 1 USD.
    offered = quote(merchant, rate="150")
    for _ in range(100):
        transfer_create(merchant=merchant, source=usd, destination=jpy, amount=1, fx_quote=offered)
    jpy.refresh_from_db()

    assert jpy.balance <= 150
    assert invariant_violations() == {}


def test_a_round_trip_never_ends_with_more_than_it_started(
    merchant: Merchant, usd: Account
) -> None:
    gbp = AccountFactory.create(merchant=merchant, currency="GBP")
    there = quote(merchant, "USD/GBP", rate="0.787")
    back = quote(merchant, "GBP/USD", rate="1.27")
    for _ in range(50):
        sent = transfer_create(
            merchant=merchant, source=usd, destination=gbp, amount=2, fx_quote=there
        )
        transfer_create(
            merchant=merchant,
            source=gbp,
            destination=usd,
            amount=sent.destination_amount,
            fx_quote=back,
        )
    usd.refresh_from_db()

    assert usd.balance <= 10_000


def test_a_rate_whose_round_trip_gains_money_is_refused() -> None:
    fx_rate_set(source_currency="USD", destination_currency="JPY", rate="150")

    with pytest.raises(ValidationError) as refused:
        fx_rate_set(source_currency="JPY", destination_currency="USD", rate="0.0067")  # ×1.005

    assert (refused.value.code, refused.value.param) == ("fx_rate_arbitrage", "rate")
    assert FxRate.objects.count() == 1
