"""Bad input (SPEC §4.1; RELIABILITY §7.3 B1, B2, B4, B5, B9, B11, B13): every bad request
is a 4xx in the one error shape, never a 500, and writes nothing."""

import base64
import json
import time
from typing import Any

import pytest
from django.test import override_settings

from accounts.models import Account, Customer
from core.amounts import MAX_AMOUNT
from core.currencies import minor_units_per_major
from payments.models import Transfer
from tests.api.helpers import ApiClient, assert_error, row_counts


@pytest.fixture
def accounts(funded_account) -> tuple[Account, Account]:
    return funded_account(balance=2**31 + 1_000), funded_account()


@pytest.fixture
def transfer_body(accounts) -> dict[str, Any]:
    source, destination = accounts
    return {
        "source_account": source.public_id,
        "destination_account": destination.public_id,
        "amount": 100,
        "currency": "usd",
    }


def refused(
    client: ApiClient,
    path: str,
    body: Any = None,
    *,
    raw: str | bytes | None = None,
    status: int = 400,
    type: str = "invalid_request_error",
    param: object = ...,
    **kwargs: Any,
) -> dict[str, Any]:
    """POST is refused with `status` in the error shape and no row written anywhere."""
    client.client.raise_request_exception = False  # a 500 is a failed assertion, not a crash
    before = row_counts()
    response = client.post(path, body, raw=raw, **kwargs)
    error = assert_error(response, status, type, param=param)
    assert row_counts() == before
    return error


def raw_with(body: dict[str, Any], key: str, raw_value: str) -> str:
    """`body` as JSON with `key` set to `raw_value` spelled exactly (e.g. `1e2`, `-0`)."""
    marker = "__RAW__"
    return json.dumps({**body, key: marker}).replace(json.dumps(marker), raw_value)


# B1: amounts --------------------------------------------------------------------------------

BAD_AMOUNTS = [
    "0",
    "-0",
    "-1",
    "-100",
    str(MAX_AMOUNT + 1),
    str(2**53 + 1),
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    str(10**30),
    "-" + str(2**63 + 1),
    '"100"',
    '"1e2"',
    '""',
    '" 100"',
    "100.0",
    "100.00",
    "1e2",
    "1E2",
    "1.5",
    "0.1",
    "1e-9",
    "10.005",
    "1e400",
    "null",
    "true",
    "false",
    "[]",
    "[100]",
    "{}",
    '{"value": 100}',
]


@pytest.mark.parametrize("raw_amount", BAD_AMOUNTS)
def test_bad_amounts_are_400_naming_amount(raw_amount, api, transfer_body):
    refused(api, "transfers", raw=raw_with(transfer_body, "amount", raw_amount), param="amount")


def test_missing_amount_is_400_naming_amount(api, transfer_body):
    del transfer_body["amount"]
    error = refused(api, "transfers", transfer_body, param="amount")
    assert error["code"] == "parameter_required"


@pytest.mark.parametrize("raw_amount", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_400(raw_amount, api, transfer_body):
    refused(api, "transfers", raw=raw_with(transfer_body, "amount", raw_amount))


def test_a_number_too_long_to_parse_is_400(api, transfer_body):
    # Python refuses to parse integers of more than 4300 digits: a 400, not a 500.
    refused(api, "transfers", raw=raw_with(transfer_body, "amount", "1" + "0" * 5000))


@pytest.mark.parametrize("amount", [1, 2**31, 2**31 + 1_000])
def test_json_integers_within_the_range_are_accepted(amount, api, transfer_body, accounts):
    # 2^31 is past a 32-bit integer but well inside the documented maximum (10^12).
    response = api.post("transfers", {**transfer_body, "amount": amount})

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == amount
    destination = accounts[1]
    destination.refresh_from_db()
    assert destination.balance == amount


def test_the_documented_maximum_is_accepted(api, funded_account):
    source, destination = funded_account(balance=MAX_AMOUNT), funded_account()
    response = api.post(
        "transfers",
        {
            "source_account": source.public_id,
            "destination_account": destination.public_id,
            "amount": MAX_AMOUNT,
            "currency": "USD",
        },
    )
    assert response.status_code == 201, response.content


# B2: currencies -----------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["usd", "USD", "Usd", "uSd"])
def test_currencies_are_accepted_in_any_case_and_returned_upper(given, api):
    response = api.post("accounts", {"currency": given})

    assert response.status_code == 201, response.content
    assert response.json()["currency"] == "USD"
    assert Account.objects.get(public_id=response.json()["id"]).currency == "USD"


@pytest.mark.parametrize(
    "raw_currency",
    [
        '"XXX"',
        '"xts"',
        '"ZZZ"',
        '"US"',
        '"USDD"',
        '""',
        '"$"',
        '"U\\u0000S"',
        '"\\ud800sd"',
        "5",
        "840",
        "null",
        "true",
        "[]",
        '{"code": "USD"}',
        '["USD"]',
    ],
)
def test_bad_currencies_are_400_naming_currency(raw_currency, api, transfer_body):
    refused(api, "accounts", raw=raw_with({}, "currency", raw_currency), param="currency")
    refused(
        api, "transfers", raw=raw_with(transfer_body, "currency", raw_currency), param="currency"
    )


def test_missing_currency_is_400(api, transfer_body):
    refused(api, "accounts", {"description": "no currency"}, param="currency")
    del transfer_body["currency"]
    refused(api, "transfers", transfer_body, param="currency")


def test_a_transfer_currency_other_than_the_source_accounts_is_400(api, transfer_body):
    error = refused(api, "transfers", {**transfer_body, "currency": "eur"}, param="currency")
    assert error["code"] == "currency_mismatch"


def test_accounts_in_two_currencies_are_never_an_implicit_fx_transfer(api, funded_account):
    source, destination = funded_account(balance=1_000), funded_account(currency="EUR")
    body = {
        "source_account": source.public_id,
        "destination_account": destination.public_id,
        "amount": 100,
        "currency": "USD",
    }
    refused(api, "transfers", body, param="fx_quote")
    # A rate is never the caller's: naming one is an unknown field, with or without a quote.
    refused(api, "transfers", {**body, "fx_rate": "0.9"}, param="fx_rate")


@pytest.mark.parametrize(
    ("currency", "exponent", "amount"), [("JPY", 0, 1050), ("USD", 2, 1050), ("KWD", 3, 1234)]
)
def test_amounts_are_minor_units_of_the_currencys_exponent(
    currency, exponent, amount, api, funded_account
):
    assert minor_units_per_major(currency) == 10**exponent
    source = funded_account(balance=amount, currency=currency)
    destination = api.post("accounts", {"currency": currency.lower()}).json()

    response = api.post(
        "transfers",
        {
            "source_account": source.public_id,
            "destination_account": destination["id"],
            "amount": amount,
            "currency": currency.lower(),
        },
    )

    assert response.status_code == 201, response.content
    assert (response.json()["amount"], response.json()["currency"]) == (amount, currency)
    balance = api.get(f"accounts/{destination['id']}/balance").json()
    assert (balance["balance"], balance["currency"]) == (amount, currency)


def test_the_same_account_on_both_sides_is_400(api, transfer_body):
    body = {**transfer_body, "destination_account": transfer_body["source_account"]}
    refused(api, "transfers", body, param="destination_account")


# B4: unicode ----------------------------------------------------------------------------------

TEXT_FIELDS = [
    ("customers", "name", {}),
    ("customers", "external_reference", {}),
    ("accounts", "description", {"currency": "usd"}),
    ("transfers", "description", None),  # None: the valid transfer body
]


def body_for(base: dict[str, Any] | None, transfer_body: dict[str, Any]) -> dict[str, Any]:
    return dict(transfer_body if base is None else base)


@pytest.mark.parametrize(("path", "field", "base"), TEXT_FIELDS)
@pytest.mark.parametrize("value", ["\x00", "a\x00b", "trailing\x00"])
def test_nul_in_text_is_400(path, field, base, value, api, transfer_body):
    refused(api, path, {**body_for(base, transfer_body), field: value}, param=field)


@pytest.mark.parametrize("path", ["customers", "accounts", "transfers"])
@pytest.mark.parametrize(
    "metadata", [{"k": "\x00"}, {"\x00": "v"}, {"k": "a\x00"}], ids=["value", "key", "inside"]
)
def test_nul_in_metadata_is_400(path, metadata, api, transfer_body):
    base = {"customers": {}, "accounts": {"currency": "usd"}, "transfers": transfer_body}[path]
    refused(api, path, {**base, "metadata": metadata}, param="metadata")


@pytest.mark.parametrize(("path", "field", "base"), TEXT_FIELDS)
@pytest.mark.parametrize("escaped", ["\\ud800", "a\\udc00b", "\\udc00\\ud800", "\\ud83d"])
def test_lone_surrogates_in_text_are_400(path, field, base, escaped, api, transfer_body):
    raw = raw_with(body_for(base, transfer_body), field, f'"{escaped}"')
    refused(api, path, raw=raw, param=field)


@pytest.mark.parametrize("where", ["key", "value"])
def test_lone_surrogates_in_metadata_are_400(where, api):
    raw = '{"metadata": {"\\ud800": "v"}}' if where == "key" else '{"metadata": {"k": "\\ud800"}}'
    refused(api, "customers", raw=raw, param="metadata")


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("accounts", "customer", '{"currency": "usd", "customer": "\\ud800"}'),
        ("accounts", "customer", '{"currency": "usd", "customer": "cus_\\u0000"}'),
        ("transfers", "source_account", None),
        ("transfers", "destination_account", None),
    ],
)
def test_unusable_ids_in_the_body_are_404_never_500(path, field, body, api, transfer_body):
    if body is None:
        body = raw_with(transfer_body, field, '"acct_\\ud800\\u0000"')
    refused(api, path, raw=body, status=404, type="not_found", param=field)


@pytest.mark.parametrize("path", ["customers/%00", "accounts/a%00b/balance", "events/evt_%00"])
def test_unusable_ids_in_the_path_are_404_never_500(path, api):
    api.client.raise_request_exception = False
    assert_error(api.get(path), 404, "not_found")


# Control and invisible formatting characters are refused (tests/api/test_edge.py).
VALID_UNICODE = [
    "💸 paid 👩🏽‍💻",  # emoji with a skin tone and a zero-width joiner
    "مرحبا שלום",  # RTL scripts
    "می\u200cخواهم",  # Persian with its zero-width non-joiner
    "caf\u00e9 / cafe\u0301",  # NFC and NFD look-alikes stay distinct
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010fffd",
    "  leading and trailing spaces  ",
    "<script>alert(1)</script>",
]


@pytest.mark.parametrize("text", VALID_UNICODE)
def test_valid_unicode_round_trips_exactly(text, api, transfer_body):
    metadata = {"note": text, text[:40]: "key"}
    customer = api.post(
        "customers", {"name": text, "external_reference": text, "metadata": metadata}
    )
    account = api.post("accounts", {"currency": "usd", "description": text, "metadata": metadata})
    transfer = api.post("transfers", {**transfer_body, "description": text, "metadata": metadata})

    for response, path, fields in [
        (customer, "customers", ("name", "external_reference")),
        (account, "accounts", ("description",)),
        (transfer, "transfers", ("description",)),
    ]:
        assert response.status_code == 201, response.content
        created = response.json()
        fetched = api.get(f"{path}/{created['id']}").json()
        for field in fields:
            assert created[field] == fetched[field] == text
            assert fetched[field].encode("utf-8") == text.encode("utf-8")
        assert created["metadata"] == fetched["metadata"] == metadata
    stored = Customer.objects.get(public_id=customer.json()["id"])
    assert (stored.name, stored.metadata) == (text, metadata)
    event = api.get("events", {"type": "customer.created"}).json()["results"][0]
    assert event["data"]["object"]["name"] == text


@pytest.mark.parametrize(
    ("path", "field", "base", "max_length"),
    [
        ("customers", "name", {}, 200),
        ("customers", "external_reference", {}, 200),
        ("accounts", "description", {"currency": "usd"}, 200),
        ("transfers", "description", None, 500),
    ],
)
def test_text_longer_than_its_limit_is_400(path, field, base, max_length, api, transfer_body):
    body = body_for(base, transfer_body)
    refused(api, path, {**body, field: "x" * 10_000}, param=field)
    refused(api, path, {**body, field: "é" * (max_length + 1)}, param=field)
    response = api.post(path, {**body, field: "é" * max_length})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("raw_value", ["5", "true", "null", "[]", '{"a": "b"}'])
@pytest.mark.parametrize(("path", "field"), [("customers", "name"), ("customers", "email")])
def test_text_fields_take_only_strings(path, field, raw_value, api):
    refused(api, path, raw=raw_with({}, field, raw_value), param=field)


def test_a_bad_email_is_400(api):
    refused(api, "customers", {"email": "not an email"}, param="email")


# Metadata limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": "v" for i in range(21)},
        {"k" * 41: "v"},
        {"k": "v" * 501},
        {"": "v"},
        {"k": 1},
        {"k": 1.5},
        {"k": True},
        {"k": None},
        {"k": ["v"]},
        {"k": {"nested": "v"}},
        "a string",
        ["k", "v"],
        5,
        None,
    ],
    ids=lambda metadata: json.dumps(metadata)[:30],
)
@pytest.mark.parametrize("path", ["customers", "accounts", "transfers"])
def test_metadata_outside_its_limits_is_400(metadata, path, api, transfer_body):
    base = {"customers": {}, "accounts": {"currency": "usd"}, "transfers": transfer_body}[path]
    refused(api, path, {**base, "metadata": metadata}, param="metadata")


def test_metadata_at_its_limits_is_accepted(api):
    at_limit = {f"{i:02d}" + "k" * 38: "v" * 500 for i in range(20)}
    response = api.post("customers", {"metadata": at_limit})
    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == at_limit


# B9: mass assignment --------------------------------------------------------------------------

UNKNOWN_FIELDS = [
    "status",
    "fee",
    "merchant",
    "merchant_id",
    "ledger_transaction",
    "id",
    "object",
    "created",
    "balance",
    "held",
    "livemode",
    "captured_amount",
    "overdraft_limit",
    "kind",
    "failure_code",
    "Amount",
]


@pytest.mark.parametrize("field", UNKNOWN_FIELDS)
@pytest.mark.parametrize("path", ["customers", "accounts", "transfers"])
def test_unknown_fields_are_400_naming_them(field, path, api, transfer_body):
    base = {"customers": {}, "accounts": {"currency": "usd"}, "transfers": transfer_body}[path]
    error = refused(api, path, {**base, field: "succeeded"}, param=field)
    assert error["code"] == "parameter_unknown"


def test_responses_show_an_allowlist_of_fields(api, transfer_body):
    customer = api.post("customers", {"name": "A"}).json()
    account = api.post("accounts", {"currency": "usd"}).json()
    transfer = api.post("transfers", transfer_body).json()

    assert set(customer) == {
        "id",
        "object",
        "name",
        "email",
        "external_reference",
        "metadata",
        "created",
    }
    assert "merchant" not in account and "balance" not in account and "kind" not in account
    assert "merchant" not in transfer


# B5: bodies -----------------------------------------------------------------------------------


def test_a_3_mb_body_is_413(api):
    raw = json.dumps({"name": "x" * 3 * 1024 * 1024})
    refused(api, "customers", raw=raw, status=413)


def test_a_body_larger_than_it_says_is_refused(api, transfer_body):
    # An understated Content-Length: only the declared bytes are read, and they do not parse.
    raw = json.dumps({**transfer_body, "description": "x" * 1_000_000})
    refused(api, "transfers", raw=raw, CONTENT_LENGTH="20")


def test_a_body_announced_as_too_large_is_413_without_being_read(api):
    refused(api, "customers", raw="{}", status=413, CONTENT_LENGTH=str(100 * 1024 * 1024))


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"metadata": ' * 100_000 + "{}" + "}" * 100_000,
        "[" + "1," * 1_000_000 + "1]",
    ],
    ids=["deep arrays", "deep objects", "a million elements"],
)
def test_pathological_bodies_are_refused_fast(raw, api):
    started = time.monotonic()
    error = refused(api, "customers", raw=raw, status=413)
    assert time.monotonic() - started < 3
    assert error["code"] == "request_too_large"


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "[" + "1," * 1_000_000 + "1]",
    ],
    ids=["deep arrays", "deep objects", "a million elements"],
)
def test_pathological_bodies_within_the_size_limit_are_400_not_500(raw, api):
    with override_settings(API_MAX_BODY_BYTES=8 * 1024 * 1024):
        started = time.monotonic()
        refused(api, "customers", raw=raw, status=400)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("raw", ["[]", '[{"name": "x"}]', "null", '"x"', "5", "true"])
def test_a_body_that_is_not_an_object_is_400(raw, api):
    for path in ("customers", "transfers"):
        error = refused(api, path, raw=raw, param=None)
        # `null` too: the same words, not DRF's "No data provided".
        assert error["message"].endswith("the body must be a JSON object"), error


@pytest.mark.parametrize(
    "raw",
    ["{", "{'name': 'x'}", '{"name": "x",}', '{"name": "x"} trailing', "\ufeff{}", "nul\x00l"],
)
def test_invalid_json_is_400(raw, api):
    error = refused(api, "customers", raw=raw.encode("utf-8"), param=None)
    assert error["code"] == "parse_error"


def test_bytes_that_are_not_utf8_are_400(api):
    refused(api, "customers", raw='{"name": "café"}'.encode("latin-1"))
    refused(api, "customers", raw='{"name": "x"}', content_type="application/json; charset=utf-16")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/octet-stream",
    ],
)
def test_a_body_that_is_not_json_is_415(content_type, api):
    error = refused(api, "customers", raw='{"name": "x"}', content_type=content_type, status=415)
    assert error["code"] == "unsupported_media_type"


def test_an_empty_transfer_body_is_400_naming_the_first_field(api):
    refused(api, "transfers", raw="", param="source_account")


# B11: SQL-injection-shaped strings ------------------------------------------------------------

SQLI = [
    "' OR 1=1--",
    '"; DROP TABLE ledger_ledgerentry;--',
    "'; DROP TABLE accounts_account; --",
    "$$",
    "\\",
    "'||pg_sleep(5)||'",
    "1); SELECT pg_sleep(5); --",
    "%' AND 1=1 AND '%'='",
]


@pytest.mark.parametrize("text", SQLI)
def test_sql_shaped_text_is_stored_verbatim(text, api, transfer_body):
    started = time.monotonic()
    customer = api.post(
        "customers", {"name": text, "external_reference": text, "metadata": {"k": text}}
    )
    account = api.post("accounts", {"currency": "usd", "description": text})
    transfer = api.post("transfers", {**transfer_body, "description": text})

    assert time.monotonic() - started < 4
    assert customer.status_code == account.status_code == transfer.status_code == 201
    assert customer.json()["name"] == customer.json()["metadata"]["k"] == text
    assert account.json()["description"] == transfer.json()["description"] == text
    assert Customer.objects.get(public_id=customer.json()["id"]).external_reference == text
    assert Transfer.objects.count() == 1  # the tables are all still there


@pytest.mark.parametrize(
    "path", ["customers", "accounts", "transfers", "events", "accounts/{acct}/entries"]
)
def test_sql_shaped_filters_are_harmless(path, api, transfer_body):
    api.post("transfers", transfer_body)
    path = path.format(acct=transfer_body["source_account"])
    api.client.raise_request_exception = False
    filters = ["customer", "account", "currency", "type", "ordering", "order_by", "id", "search"]

    for text in SQLI:
        for param in filters:
            started = time.monotonic()
            response = api.get(path, {param: text})

            assert time.monotonic() - started < 4, (text, param)
            assert response.status_code in {200, 400}, (text, param, response.content)
            if response.status_code == 400:
                assert_error(response, 400, "invalid_request_error", param=param)
            elif (path, param) in {
                ("accounts", "customer"),
                ("accounts", "currency"),
                ("transfers", "account"),
                ("transfers", "currency"),
                ("events", "type"),
            }:
                assert response.json()["results"] == [], (path, param)


@pytest.mark.parametrize("text", SQLI)
@pytest.mark.parametrize("param", ["status", "created_after", "created_before"])
def test_sql_shaped_values_of_typed_filters_are_400(text, param, api):
    for path in ["accounts", "transfers"] if param == "status" else ["customers", "events"]:
        assert_error(api.get(path, {param: text}), 400, "invalid_request_error", param=param)


@pytest.mark.parametrize("text", SQLI)
def test_sql_shaped_ids_in_the_path_are_404(text, api):
    from urllib.parse import quote

    api.client.raise_request_exception = False
    assert_error(api.get("customers/" + quote(text, safe="")), 404, "not_found")


# B13 and lists: page sizes, cursors, filters ------------------------------------------------


@pytest.fixture
def many_customers(make_customer):
    return [make_customer(name=f"c{i}") for i in range(105)]


@pytest.fixture
def few_customers(make_customer):
    return [make_customer(name=f"c{i}") for i in range(3)]


def test_page_size_is_capped_at_100(api, many_customers):
    response = api.get("customers", {"page_size": "1000000"})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 100
    assert response.json()["next"]


@pytest.mark.parametrize("page_size", ["0", "-1", "abc", "", "1e3", "\x00", "9" * 100])
def test_odd_page_sizes_fall_back_to_the_default(page_size, api, few_customers):
    response = api.get("customers", {"page_size": page_size})

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 3


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "é",
        "%00",
        "x" * 10_000,
        _b64("p=abc"),
        _b64("p=%00"),
        _b64("p=1.5"),
        _b64("p=' OR 1=1--"),
        _b64("r=x"),
        _b64("o=abc"),
        _b64("o=-1"),
        _b64("p=" + "9" * 100),
        _b64("o=99999999999"),
        base64.b64encode(b"\xff\xfe").decode(),
    ],
)
def test_an_invalid_cursor_is_never_a_500(cursor, api, few_customers):
    api.client.raise_request_exception = False
    response = api.get("customers", {"cursor": cursor})

    assert response.status_code in {200, 400, 404}, response.content
    if response.status_code != 200:
        assert_error(response, response.status_code, response.json()["error"]["type"])


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("customers", {"created_after": "yesterday"}, "created_after"),
        ("customers", {"created_before": "2024-13-45T00:00:00Z"}, "created_before"),
        ("transfers", {"created_after": "1700000000"}, "created_after"),
        ("transfers", {"status": "bogus"}, "status"),
        ("transfers", {"status": "SUCCEEDED"}, "status"),
        ("accounts", {"status": "deleted"}, "status"),
        ("events", {"created_before": "\x00"}, "created_before"),
    ],
)
def test_bad_filter_values_are_400(path, params, param, api):
    assert_error(api.get(path, params), 400, "invalid_request_error", param=param)


@pytest.mark.parametrize("as_of", ["yesterday", "2024-02-30T00:00:00Z", "1700000000", "\x00"])
def test_a_bad_as_of_is_400(as_of, api, accounts):
    path = f"accounts/{accounts[0].public_id}/balance"
    assert_error(api.get(path, {"as_of": as_of}), 400, "invalid_request_error", param="as_of")


# Routes and methods ---------------------------------------------------------------------------


def test_too_many_query_parameters_is_a_400_not_a_500(api, anonymous_api):
    # Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) when the query string
    # is first read; without a key, authentication refuses the request before that.
    params = {f"x{index}": "1" for index in range(1_001)}
    assert_error(
        api.get("customers", params), 400, "invalid_request_error", code="request_malformed"
    )
    assert_error(anonymous_api.get("customers", params), 401, "authentication_error")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/v1/customers/",
        "/api/v1/disputes",
        "/api/v2/customers",
        "/api/v1/accounts/acct_x/nope",
        "/api/",
    ],
)
def test_an_unknown_route_is_a_json_404(path, api, anonymous_api):
    assert_error(api.get(path), 404, "not_found")
    assert_error(anonymous_api.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "customers"),
        ("PUT", "customers"),
        ("PATCH", "accounts"),
        ("DELETE", "customers/{customer}"),
        ("PUT", "accounts/{account}"),
        ("PATCH", "transfers/{transfer}"),
        ("POST", "customers/{customer}"),
        ("POST", "accounts/{account}/balance"),
        ("POST", "accounts/{account}/entries"),
        ("POST", "events"),
        ("DELETE", "events/{event}"),
    ],
)
def test_a_method_not_allowed_is_405_in_the_error_shape(
    method, path, api, make_customer, transfer_body
):
    transfer = api.post("transfers", transfer_body).json()
    ids = {
        "customer": make_customer().public_id,
        "account": transfer_body["source_account"],
        "transfer": transfer["id"],
        "event": api.get("events").json()["results"][0]["id"],
    }
    before = row_counts()

    response = api.request(method, path.format(**ids), {"status": "closed"})

    error = assert_error(response, 405, "invalid_request_error")
    assert error["code"] == "method_not_allowed"
    assert "Allow" in response
    assert row_counts() == before


# Request headers that end up in the audit row --------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_USER_AGENT": "x" * 10_000},
        {"HTTP_USER_AGENT": "curl/8 \u202e 💸"},
        {"HTTP_X_REQUEST_ID": "x" * 10_000},
        {"HTTP_X_REQUEST_ID": "req\x00id"},
        {"REMOTE_ADDR": ""},
        {"REMOTE_ADDR": "::1"},
        {"HTTP_USER_AGENT": "curl\x00/8"},
        {"REMOTE_ADDR": "203.0.113.9, 10.0.0.1"},
    ],
    ids=lambda headers: repr(headers)[:40],
)
def test_odd_request_headers_never_break_a_write(headers, api):
    api.client.raise_request_exception = False

    response = api.post("customers", {"name": "x"}, **headers)

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*", "nonsense/;;"])
def test_any_accept_header_gets_json(accept, api):
    response = api.get("customers", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["results"] == []


def test_the_schema_still_negotiates_json_or_yaml(anonymous_api):
    json_schema = anonymous_api.get("schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    yaml_schema = anonymous_api.get("schema/", HTTP_ACCEPT="application/vnd.oai.openapi")
    assert json_schema["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert yaml_schema["Content-Type"].startswith("application/vnd.oai.openapi")
    assert json_schema.json()["openapi"].startswith("3.")
