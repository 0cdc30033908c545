"""The HTTP edge (issue 9, items 6-12): the black-box probe's findings and the rough edges a
new user hit, kept as a regression suite. Every request goes through the WSGI application
the server runs (config.wsgi), as the server calls it."""

import base64
import json
import re
import struct
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from accounts.api_keys import api_key_revoke
from accounts.models import Account
from audit.models import AuditLog
from core.api.throttling import AnonymousRateThrottle, parse_rate
from core.api.views import _built_schema, _rendered_schema
from tests.api.helpers import ERROR_KEYS, ApiClient, row_counts, transfer_body, wsgi_call

OUR_REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")
# 19.75 s before the end of a one-minute window.
NOW = 1_000_000.25


class Answer:
    def __init__(self, status: str, headers: dict[str, str], content: bytes):
        self.status = int(status.split()[0])
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


def call(
    method: str,
    path: str,
    *,
    secret: str | None = None,
    authorization: str | None = None,
    query: dict[str, str] | str = "",
    raw: bytes | None = None,
    body: Any = None,
    **environ: Any,
) -> Answer:
    """One request through the real WSGI stack; `secret` sends `Bearer <secret>`."""
    if secret is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    if body is not None:
        raw = json.dumps(body).encode()
    if raw is not None:
        environ.setdefault("CONTENT_TYPE", "application/json")
    return Answer(
        *wsgi_call(
            REQUEST_METHOD=method,
            PATH_INFO=path,
            QUERY_STRING=query if isinstance(query, str) else urlencode(query),
            body_bytes=raw or b"",
            **environ,
        )
    )


def assert_error_answer(
    answer: Answer, status: int, type: str, code: str, param: str | None = None
) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.content)
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert set(error) == ERROR_KEYS, error
    assert (error["type"], error["code"], error["param"]) == (type, code, param), error
    return dict(error)


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


@pytest.fixture
def customers(api: ApiClient) -> list[str]:
    """Five customers of `api`'s merchant, oldest first."""
    return [api.post("customers", {"name": f"c{index}"}).json()["id"] for index in range(5)]


# 6. Pagination cursors ------------------------------------------------------------------


def test_a_cursor_does_not_reveal_the_internal_id(api: ApiClient, customers: list[str]) -> None:
    page = call("GET", "/api/v1/customers", secret=api.secret, query={"page_size": "2"}).json()
    cursor = cursor_of(page["next"])
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    boundary = api.merchant.customers.get(public_id=customers[2])  # the next page's first

    # Not DRF's `p=<id>`, and the id is in it neither as text nor as a number (the token is
    # random-looking bytes; a short digit string could occur by chance, eight bytes cannot).
    assert not raw.startswith(b"p=") and f"p={boundary.pk}".encode() not in raw
    assert struct.pack(">Q", boundary.pk) not in raw
    # The same position twice gives two different cursors (a random nonce), both valid.
    again = call("GET", "/api/v1/customers", secret=api.secret, query={"page_size": "2"}).json()
    assert cursor_of(again["next"]) != cursor
    for link in (page["next"], again["next"]):
        following = call(
            "GET", "/api/v1/customers", secret=api.secret, query=urlsplit(link).query
        ).json()
        assert [c["id"] for c in following["results"]] == [customers[2], customers[1]]


def test_a_drf_style_cursor_of_an_internal_id_is_refused(
    api: ApiClient, customers: list[str]
) -> None:
    newest = api.merchant.customers.get(public_id=customers[-1])
    forged = base64.b64encode(f"p={newest.pk}".encode()).decode()

    answer = call("GET", "/api/v1/customers", secret=api.secret, query={"cursor": forged})

    assert_error_answer(answer, 404, "not_found", "resource_missing", param="cursor")


@pytest.mark.parametrize("position", [0, 5, -1, 10, 30])
def test_a_cursor_with_any_character_changed_is_refused(
    position: int, api: ApiClient, customers: list[str]
) -> None:
    page = call("GET", "/api/v1/customers", secret=api.secret, query={"page_size": "2"}).json()
    cursor = cursor_of(page["next"])
    changed = cursor[position]
    swapped = "A" if changed != "A" else "B"
    forged = cursor[:position] + swapped + cursor[position + 1 :] if position != -1 else cursor[:-1]

    answer = call("GET", "/api/v1/customers", secret=api.secret, query={"cursor": forged})

    assert_error_answer(answer, 404, "not_found", "resource_missing", param="cursor")


def test_another_lists_cursor_is_refused(api: ApiClient, customers: list[str]) -> None:
    page = call("GET", "/api/v1/customers", secret=api.secret, query={"page_size": "2"}).json()

    answer = call(
        "GET", "/api/v1/events", secret=api.secret, query={"cursor": cursor_of(page["next"])}
    )

    assert_error_answer(answer, 404, "not_found", "resource_missing", param="cursor")


def test_another_merchants_cursor_is_refused(
    api: ApiClient, other_merchant_api: ApiClient, customers: list[str]
) -> None:
    for index in range(3):
        other_merchant_api.post("customers", {"name": f"o{index}"})
    theirs = call(
        "GET", "/api/v1/customers", secret=other_merchant_api.secret, query={"page_size": "1"}
    ).json()

    answer = call(
        "GET", "/api/v1/customers", secret=api.secret, query={"cursor": cursor_of(theirs["next"])}
    )

    assert_error_answer(answer, 404, "not_found", "resource_missing", param="cursor")


def test_another_accounts_entries_cursor_is_refused(api: ApiClient, funded_account: Any) -> None:
    first: Account = funded_account(balance=1_000)
    second: Account = funded_account(balance=1_000)
    for _ in range(2):
        api.post("transfers", transfer_body(first.public_id, second.public_id, 1))
    page = call(
        "GET",
        f"/api/v1/accounts/{first.public_id}/entries",
        secret=api.secret,
        query={"page_size": "1"},
    ).json()

    answer = call(
        "GET",
        f"/api/v1/accounts/{second.public_id}/entries",
        secret=api.secret,
        query={"cursor": cursor_of(page["next"])},
    )

    assert_error_answer(answer, 404, "not_found", "resource_missing", param="cursor")


# 7. Duplicate keys, control and invisible characters, no Python in messages --------------


def test_a_duplicate_key_in_a_json_body_is_refused(api: ApiClient, funded_account: Any) -> None:
    source: Account = funded_account(balance=100_000_000)
    destination: Account = funded_account()
    before = row_counts()
    raw = (
        f'{{"source_account": "{source.public_id}", "destination_account": '
        f'"{destination.public_id}", "currency": "USD", "amount": 1, "amount": 100000000}}'
    )

    answer = call("POST", "/api/v1/transfers", secret=api.secret, raw=raw.encode())

    error = assert_error_answer(answer, 400, "invalid_request_error", "parse_error")
    assert '"amount"' in error["message"]
    assert row_counts() == before
    source.refresh_from_db()
    assert source.balance == 100_000_000


def test_a_duplicate_key_in_a_nested_object_is_refused(api: ApiClient) -> None:
    before = row_counts()
    raw = b'{"name": "Ann", "metadata": {"tier": "gold", "tier": "platinum"}}'

    answer = call("POST", "/api/v1/customers", secret=api.secret, raw=raw)

    error = assert_error_answer(answer, 400, "invalid_request_error", "parse_error")
    assert '"tier"' in error["message"]
    assert row_counts() == before


REFUSED_CHARACTERS = [
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u200f",  # RIGHT-TO-LEFT MARK
    "\u200b",  # ZERO WIDTH SPACE
    "\u2060",  # WORD JOINER
    "\ufeff",  # ZERO WIDTH NO-BREAK SPACE (a BOM)
    "\u00ad",  # SOFT HYPHEN
    "\x00",  # NUL
    "\x07",  # BEL
    "\x1b",  # ESC
    "\t",
    "\n",
    "\x7f",  # DEL
    "\x85",  # C1: NEXT LINE
    "\x9b",  # C1: CONTROL SEQUENCE INTRODUCER
]


def _free_text_cases(account: str, other: str) -> list[tuple[str, dict[str, Any], str, str]]:
    """(path, body, field holding the text, param the error names) for each free text."""
    transfer = transfer_body(account, other, 1)
    return [
        ("customers", {}, "name", "name"),
        ("customers", {}, "external_reference", "external_reference"),
        ("accounts", {"currency": "USD"}, "description", "description"),
        ("transfers", transfer, "description", "description"),
    ]


@pytest.mark.parametrize("character", REFUSED_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_control_and_invisible_characters_in_free_text_are_refused(
    character: str, api: ApiClient, funded_account: Any
) -> None:
    source, destination = funded_account(balance=10), funded_account()
    before = row_counts()
    for path, base, field, param in _free_text_cases(source.public_id, destination.public_id):
        body = {**base, field: f"Invoice{character}gpj.exe"}

        answer = call("POST", f"/api/v1/{path}", secret=api.secret, body=body)

        error = assert_error_answer(
            answer, 400, "invalid_request_error", "parameter_invalid", param
        )
        assert f"U+{ord(character):04X}" in error["message"]
    assert row_counts() == before


@pytest.mark.parametrize("character", REFUSED_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("where", ["key", "value"])
def test_control_and_invisible_characters_in_metadata_are_refused(
    character: str, where: str, api: ApiClient
) -> None:
    text = f"tier{character}"
    metadata = {text: "gold"} if where == "key" else {"tier": text}
    before = row_counts()

    answer = call(
        "POST", "/api/v1/customers", secret=api.secret, body={"name": "A", "metadata": metadata}
    )

    assert_error_answer(answer, 400, "invalid_request_error", "parameter_invalid", "metadata")
    assert row_counts() == before


@pytest.mark.parametrize(
    "text",
    [
        "👩🏽‍💻 paid",  # an emoji sequence with a zero-width joiner
        "می\u200cخواهم",  # Persian with its zero-width non-joiner
        "Zoë Ångström",
        "مرحبا שלום",
    ],
)
def test_joiners_that_scripts_and_emoji_need_are_kept(text: str, api: ApiClient) -> None:
    answer = call(
        "POST",
        "/api/v1/customers",
        secret=api.secret,
        body={"name": text, "metadata": {text[:40]: text}},
    )

    assert answer.status == 201, answer.content
    assert answer.json()["name"] == text
    assert answer.json()["metadata"] == {text[:40]: text}


PYTHON_INTERNALS = ("sys.", "set_int_max_str_digits", "codec", "utf-8-sig", "0x", "position ")


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"name": ' + b"9" * 5000 + b"}", "application/json"),
        (b'{"metadata": {"a": ' + b"1" * 5000 + b"}}", "application/json"),
        (b'{"name": "\xff\xfe"}', "application/json"),
        (b'{"name": "\xc3"}', "application/json"),
        ('{"name": "Zoë"}'.encode("utf-16"), "application/json; charset=utf-8"),
        (b'{"name": NaN}', "application/json"),
        (b'{"name": -Infinity}', "application/json"),
        (b'{"name": "x",}', "application/json"),
        (b"\xef\xbb\xbf\xef\xbb\xbf{}", "application/json"),
    ],
)
def test_error_messages_never_show_python_internals(
    raw: bytes, content_type: str, api: ApiClient
) -> None:
    answer = call(
        "POST", "/api/v1/customers", secret=api.secret, raw=raw, CONTENT_TYPE=content_type
    )

    error = assert_error_answer(answer, 400, "invalid_request_error", "parse_error")
    for internal in PYTHON_INTERNALS:
        assert internal not in error["message"], error


def test_an_unsupported_currency_is_named_without_a_python_repr(api: ApiClient) -> None:
    answer = call("POST", "/api/v1/accounts", secret=api.secret, body={"currency": "us\x00"})

    error = assert_error_answer(
        answer, 400, "invalid_request_error", "invalid_currency", "currency"
    )
    assert "\\x00" not in error["message"] and "'" not in error["message"]


# 8. Unauthenticated work is bounded ------------------------------------------------------


@pytest.fixture
def own_counters(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Rate-limit counters of this test only (a key prefix of its own on the suite's
    Redis), with the anonymous throttle's clock fixed at NOW."""
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": settings.REDIS_URL,
        "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
    }
    monkeypatch.setattr(AnonymousRateThrottle, "timer", staticmethod(lambda: NOW))
    with override_settings(CACHES={"default": cache}, API_ANONYMOUS_RATE_LIMIT="3/minute"):
        yield


def assert_rate_limited(answer: Answer) -> None:
    assert_error_answer(answer, 429, "rate_limit_error", "rate_limited")
    assert answer.headers["Retry-After"] == "20"  # 19.75 s left in the window, rounded up


ANONYMOUS_REQUESTS: dict[str, dict[str, Any]] = {
    "no key": {"path": "/api/v1/customers"},
    "an invalid key": {"path": "/api/v1/customers", "authorization": "Bearer mk_live_guess"},
    "a malformed header": {"path": "/api/v1/customers", "authorization": "Basic eDp5"},
    "the schema": {"path": "/api/v1/schema/"},
    "the docs": {"path": "/api/v1/docs/"},
    "the index": {"path": "/api/v1/"},
}


@pytest.mark.parametrize("kind", list(ANONYMOUS_REQUESTS))
def test_unauthenticated_requests_are_limited_per_client_address(
    kind: str, own_counters: None
) -> None:
    request = ANONYMOUS_REQUESTS[kind]
    answers = [call("GET", **request) for _ in range(3)]
    assert all(answer.status in {200, 401} for answer in answers), [a.status for a in answers]

    assert_rate_limited(call("GET", **request))
    # Another address has its own budget.
    assert call("GET", **request, REMOTE_ADDR="198.51.100.7").status in {200, 401}


def test_an_invalid_key_flood_is_limited_and_valid_keys_are_not(
    own_counters: None, api: ApiClient
) -> None:
    for _ in range(3):
        answer = call("GET", "/api/v1/customers", authorization="Bearer mk_live_guess")
        assert_error_answer(answer, 401, "authentication_error", "invalid_api_key")

    assert_rate_limited(call("GET", "/api/v1/customers", authorization="Bearer mk_live_guess"))
    assert_rate_limited(call("GET", "/api/v1/schema/"))  # one budget for all anonymous work
    # The address's own valid key is counted against the key's limit only.
    assert call("GET", "/api/v1/customers", secret=api.secret).status == 200


def test_one_ipv6_slash_64_shares_one_budget(own_counters: None) -> None:
    for host in ("1", "2", "3"):
        answer = call("GET", "/api/v1/schema/", REMOTE_ADDR=f"2001:db8:0:1::{host}")
        assert answer.status == 200

    assert_rate_limited(call("GET", "/api/v1/schema/", REMOTE_ADDR="2001:db8:0:1:ffff::9"))
    assert call("GET", "/api/v1/schema/", REMOTE_ADDR="2001:db8:0:2::1").status == 200


def test_a_malformed_anonymous_rate_names_its_setting() -> None:
    with pytest.raises(ImproperlyConfigured, match="API_ANONYMOUS_RATE_LIMIT"):
        parse_rate("lots", "API_ANONYMOUS_RATE_LIMIT")


def test_the_schema_is_built_and_rendered_once_per_process() -> None:
    json_schema = "application/vnd.oai.openapi+json"
    first = call("GET", "/api/v1/schema/", HTTP_ACCEPT=json_schema)
    rendered = _rendered_schema.cache_info()

    second = call("GET", "/api/v1/schema/", HTTP_ACCEPT=json_schema)
    yaml = call("GET", "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")

    assert first.status == second.status == yaml.status == 200
    assert first.content == second.content
    assert second.headers["Content-Type"] == "application/vnd.oai.openapi+json"
    assert yaml.content.startswith(b"openapi: 3.0")
    assert (
        _rendered_schema.cache_info().hits >= rendered.hits + 1
    )  # the JSON was not rendered again
    assert _built_schema.cache_info().misses == 1  # built once, for both formats


# 9. Request ids ---------------------------------------------------------------------------


def test_every_request_gets_our_own_id_and_the_clients_is_kept_beside_it(api: ApiClient) -> None:
    answers = [
        call(
            "POST",
            "/api/v1/customers",
            secret=api.secret,
            body={"name": "A"},
            HTTP_X_REQUEST_ID="mine-1",
        )
        for _ in range(2)
    ]

    ours = [answer.headers["X-Request-Id"] for answer in answers]
    assert all(OUR_REQUEST_ID.fullmatch(id) for id in ours) and ours[0] != ours[1]
    assert [answer.headers["X-Client-Request-Id"] for answer in answers] == ["mine-1"] * 2
    rows = AuditLog.objects.filter(action="customer.created").order_by("id")
    assert [(row.request_id, row.client_request_id) for row in rows] == [
        (ours[0], "mine-1"),
        (ours[1], "mine-1"),
    ]


@pytest.mark.parametrize("given", ["x" * 201, "caf\u00e9", "tab\there", "nul\x00"])
def test_an_unusable_client_request_id_is_dropped(given: str, api: ApiClient) -> None:
    answer = call(
        "POST", "/api/v1/customers", secret=api.secret, body={"name": "A"}, HTTP_X_REQUEST_ID=given
    )

    assert answer.status == 201
    assert OUR_REQUEST_ID.fullmatch(answer.headers["X-Request-Id"])
    assert "X-Client-Request-Id" not in answer.headers
    assert AuditLog.objects.get(action="customer.created").client_request_id == ""


# 10. OPTIONS and the schema's limits --------------------------------------------------------


def test_options_lists_no_fields_and_points_at_the_schema(api: ApiClient) -> None:
    answer = call("OPTIONS", "/api/v1/transfers", secret=api.secret)

    assert answer.status == 200
    assert answer.json() == {
        "name": "Transfer List",
        "renders": ["application/json"],
        "parses": ["application/json"],
        "schema": "http://localhost/api/v1/schema/",
    }
    assert "POST" in answer.headers["Allow"]


def test_the_schema_states_the_limits_validation_enforces() -> None:
    schema = call("GET", "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]

    account = components["AccountInputRequest"]["properties"]
    assert account["currency"]["pattern"] == "^[A-Za-z]{3}$"
    metadata = account["metadata"]
    assert metadata["maxProperties"] == 20
    assert metadata["additionalProperties"] == {"type": "string", "maxLength": 500}
    assert "1 to 40 characters" in metadata["description"]
    parameters = schema["paths"]["/api/v1/customers"]["get"]["parameters"]
    [page_size] = [p for p in parameters if p["name"] == "page_size"]
    assert page_size["schema"]["maximum"] == 100


# 11. Rough edges a new user hit -----------------------------------------------------------


def test_the_api_root_answers_an_index_without_a_key() -> None:
    answer = call("GET", "/api/v1/")

    assert answer.status == 200
    assert answer.json() == {
        "object": "api",
        "schema": "http://localhost/api/v1/schema/",
        "docs": "http://localhost/api/v1/docs/",
    }
    assert call("GET", "/api/v1/schema/").status == 200
    assert call("GET", "/api/v1/docs/").status == 200


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/customers/", "/api/v2/customers"])
def test_an_unknown_route_answers_in_the_error_format_byte_for_byte(path: str) -> None:
    unknown = call("GET", path)
    unknown_object = call("GET", "/api/v1/customers/x", authorization="Bearer mk_live_x")

    assert_error_answer(unknown, 404, "not_found", "resource_missing")
    # Written like every other error body (DRF's compact JSON), not Django's JsonResponse.
    assert unknown.content == json.dumps(unknown.json(), separators=(",", ":")).encode()
    assert unknown_object.content.startswith(b'{"error":{"type":')


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(scheme: str, api: ApiClient) -> None:
    answer = call("GET", "/api/v1/customers", authorization=f"{scheme} {api.secret}")

    assert answer.status == 200, answer.content


def test_another_scheme_is_still_refused(api: ApiClient) -> None:
    answer = call("GET", "/api/v1/customers", authorization=f"Token {api.secret}")

    assert_error_answer(answer, 401, "authentication_error", "invalid_api_key")


def test_a_revoked_key_stays_refused_in_any_case(api: ApiClient) -> None:
    assert api.api_key is not None
    api_key_revoke(api_key=api.api_key, reason="test")

    answer = call("GET", "/api/v1/customers", authorization=f"bearer {api.secret}")

    assert_error_answer(answer, 401, "authentication_error", "invalid_api_key")
