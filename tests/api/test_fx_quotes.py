"""FX quotes through the API, and cross-currency transfers that name one."""

from datetime import timedelta

from django.utils import timezone

from payments.fx import fx_rate_set
from payments.models import FxQuote, Transfer
from tests.api.helpers import assert_error, row_counts, transfer_body


def rates() -> None:
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.92")


def test_a_quote_is_created_and_read_back(api, merchant):
    rates()
    merchant.fx_spread_bps = 100
    merchant.save()

    created = api.post("fx_quotes", {"source_currency": "usd", "destination_currency": "EUR"})

    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {
        "id",
        "object",
        "source_currency",
        "destination_currency",
        "rate",
        "expires_at",
        "created",
    }
    assert (body["object"], body["source_currency"], body["destination_currency"]) == (
        "fx_quote",
        "USD",
        "EUR",
    )
    assert body["rate"] == "0.9108"  # 0.92 less 1 %
    read = api.get(f"fx_quotes/{body['id']}")
    assert (read.status_code, read.json()) == (200, body)


def test_no_reference_rate_for_the_pair_is_a_400(api):
    counts = row_counts()

    response = api.post("fx_quotes", {"source_currency": "USD", "destination_currency": "JPY"})

    error = assert_error(response, 400, "invalid_request_error", code="fx_rate_unavailable")
    assert "USD/JPY" in error["message"]
    assert row_counts() == counts
    assert not FxQuote.objects.exists()


def test_a_quote_needs_two_different_currencies(api):
    rates()

    response = api.post("fx_quotes", {"source_currency": "USD", "destination_currency": "usd"})

    assert_error(response, 400, "invalid_request_error", param="destination_currency")


def test_another_merchants_quote_is_a_404(api, other_merchant_api):
    rates()
    theirs = other_merchant_api.post(
        "fx_quotes", {"source_currency": "USD", "destination_currency": "EUR"}
    ).json()

    assert_error(api.get(f"fx_quotes/{theirs['id']}"), 404, "not_found")


def cross_currency(api, funded_account, **extra):
    source, destination = funded_account(balance=10_000), funded_account(currency="EUR")
    return {**transfer_body(source.public_id, destination.public_id, amount=1_000), **extra}


def quote_id(api) -> str:
    rates()
    return api.post("fx_quotes", {"source_currency": "USD", "destination_currency": "EUR"}).json()[
        "id"
    ]


def test_a_cross_currency_transfer_converts_at_the_quote(api, funded_account):
    quote = quote_id(api)

    response = api.post("transfers", cross_currency(api, funded_account, fx_quote=quote))

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["fx_quote"], body["fx_rate"]) == (quote, "0.92")
    assert (body["destination_amount"], body["destination_currency"]) == (920, "EUR")
    assert api.get(f"transfers/{body['id']}").json() == body


def test_a_rate_in_the_body_is_an_unknown_parameter(api, funded_account):
    # The review's exploit (a caller-chosen rate) has no way in, with or without a quote.
    counts = row_counts()

    response = api.post(
        "transfers", cross_currency(api, funded_account, fx_quote=quote_id(api), fx_rate="1e9")
    )

    assert_error(response, 400, "invalid_request_error", param="fx_rate")
    assert row_counts()["Transfer"] == counts["Transfer"]


def test_an_unknown_quote_is_a_400_naming_fx_quote(api, funded_account):
    body = cross_currency(api, funded_account, fx_quote="fxq_0000000000000000000000")

    assert_error(
        api.post("transfers", body),
        400,
        "invalid_request_error",
        param="fx_quote",
        code="fx_quote_missing",
    )


def test_an_expired_quote_is_a_400_naming_fx_quote(api, funded_account):
    quote = quote_id(api)
    FxQuote.objects.filter(public_id=quote).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.post("transfers", cross_currency(api, funded_account, fx_quote=quote))

    assert_error(response, 400, "invalid_request_error", param="fx_quote", code="fx_quote_expired")
    assert not Transfer.objects.exists()


def test_a_quote_for_another_pair_is_a_400_naming_fx_quote(api, funded_account):
    fx_rate_set(source_currency="EUR", destination_currency="USD", rate="1.08")
    other_way = api.post(
        "fx_quotes", {"source_currency": "EUR", "destination_currency": "USD"}
    ).json()["id"]

    response = api.post("transfers", cross_currency(api, funded_account, fx_quote=other_way))

    assert_error(response, 400, "invalid_request_error", param="fx_quote", code="fx_quote_mismatch")


def test_a_quote_between_accounts_in_one_currency_is_a_400(api, funded_account):
    source, destination = funded_account(balance=1_000), funded_account()
    body = {**transfer_body(source.public_id, destination.public_id), "fx_quote": quote_id(api)}

    assert_error(api.post("transfers", body), 400, "invalid_request_error", param="fx_quote")
