"""API keys (SPEC §4.1, §4.4; RELIABILITY B10, B15): shown once, stored hashed, revocable,
read-only scope, never taken from a query string, and the actor of every API write."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.api_keys import api_key_create, api_key_revoke
from accounts.models import ApiKey, Merchant
from audit.models import AuditLog
from tests.api.helpers import ApiClient, assert_error, row_counts


def run_create_api_key(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def database_contains(text: str) -> list[str]:
    """Every table with a row whose text form contains `text`."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            cursor.execute(
                f"SELECT 1 FROM {quoted} AS t WHERE strpos(t::text, %s) > 0 LIMIT 1",
                [text],
            )
            if cursor.fetchone():
                found.append(table)
    return found


# The command ------------------------------------------------------------------------------


def test_create_api_key_creates_the_merchant_and_prints_the_key_last():
    lines = run_create_api_key("--merchant", "Acme Ltd")

    secret = lines[-1]
    merchant = Merchant.objects.get(name="Acme Ltd")
    key = ApiKey.objects.get(merchant=merchant)
    assert secret.startswith("mk_live_") and len(secret) == len("mk_live_") + 32
    assert secret.startswith(key.prefix)
    assert not key.read_only and not key.revoked
    response = ApiClient(secret).get("customers")
    assert response.status_code == 200


def test_create_api_key_reuses_an_existing_merchant(merchant):
    lines = run_create_api_key("--merchant", merchant.name)

    assert Merchant.objects.filter(name=merchant.name).count() == 1
    key = ApiKey.objects.get(merchant=merchant)
    assert lines[-1].startswith(key.prefix)
    assert not any("Created merchant" in line for line in lines)


def test_create_api_key_read_only():
    secret = run_create_api_key("--merchant", "Reader", "--read-only")[-1]

    key = ApiKey.objects.get(merchant__name="Reader")
    assert key.read_only
    client = ApiClient(secret)
    assert client.get("accounts").status_code == 200
    assert_error(client.post("customers", {"name": "x"}), 403, "permission_error")


def test_create_api_key_is_audited_as_the_command():
    run_create_api_key("--merchant", "Audited")

    row = AuditLog.objects.get(action="api_key.created")
    assert (row.actor_type, row.actor) == ("command", "command:create_api_key")


def test_only_a_hash_of_the_secret_is_stored():
    secret = run_create_api_key("--merchant", "Hashed")[-1]

    key = ApiKey.objects.get(merchant__name="Hashed")
    assert secret not in key.secret_hash
    assert len(key.secret_hash) == 64
    # Nowhere in the database: not the key row, its history, the audit log, or anywhere else.
    assert database_contains(secret) == []
    assert database_contains(secret[len(key.prefix) :]) == []
    assert database_contains(key.prefix) != []  # the search itself works


def test_two_keys_never_share_a_secret(merchant):
    secrets = {api_key_create(merchant=merchant)[1] for _ in range(20)}
    assert len(secrets) == 20


# Authentication ---------------------------------------------------------------------------


def test_no_authorization_header_is_401(anonymous_api):
    response = anonymous_api.get("customers")

    assert_error(response, 401, "authentication_error")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "secret",
    [
        "mk_live_" + "0" * 32,  # the right shape, no such key
        "mk_live_",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",  # someone else's format
        "mk_live_" + "A" * 10_000,  # absurdly long
        "mk_live_' OR 1=1--",
    ],
)
def test_unknown_key_is_401(secret, api):
    response = ApiClient(secret).get("customers")

    assert_error(response, 401, "authentication_error", code="invalid_api_key")


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Token {secret}",
        "Basic {secret}",
        "{secret}",
        "Bearer: {secret}",
        "Bearer{secret}",
    ],
)
def test_malformed_authorization_header_is_401(header, api):
    response = api.client.get(
        "/api/v1/customers", HTTP_AUTHORIZATION=header.format(secret=api.secret)
    )

    assert_error(response, 401, "authentication_error")


def test_a_well_formed_header_works(api):
    # Sanity for the test above: the same client with the right header is let in.
    assert api.get("customers").status_code == 200


@pytest.mark.parametrize("name", ["api_key", "key", "access_token", "token", "authorization"])
def test_a_key_in_the_query_string_is_not_accepted(name, api, anonymous_api):
    response = anonymous_api.get("customers", {name: api.secret})
    assert_error(response, 401, "authentication_error")

    # … nor does it override a header: the header's merchant is who acts.
    response = anonymous_api.get("customers", {name: f"Bearer {api.secret}"})
    assert_error(response, 401, "authentication_error")


def test_a_key_in_the_body_is_not_accepted(api, anonymous_api):
    before = row_counts()

    response = anonymous_api.post("customers", {"name": "x", "api_key": api.secret})

    assert_error(response, 401, "authentication_error")
    assert row_counts() == before


def test_revoked_key_is_401_at_once(api, api_key):
    key, _ = api_key
    assert api.get("customers").status_code == 200

    api_key_revoke(api_key=key, reason="leaked")

    assert_error(api.get("customers"), 401, "authentication_error")
    before = row_counts()
    assert_error(api.post("customers", {"name": "x"}), 401, "authentication_error")
    assert row_counts() == before
    assert AuditLog.objects.filter(action="api_key.revoked", object_id=key.public_id).exists()


def test_revoking_one_key_leaves_the_merchants_other_keys_working(api, api_key, merchant):
    _, other_secret = api_key_create(merchant=merchant)

    api_key_revoke(api_key=api_key[0])

    assert ApiClient(other_secret).get("customers").status_code == 200


def test_last_used_at_is_set_on_use(api, api_key):
    key, _ = api_key
    assert key.last_used_at is None

    api.get("customers")

    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_failed_authentication_writes_nothing(api):
    before = row_counts()
    ApiClient("mk_live_" + "1" * 32).get("customers")
    assert row_counts() == before


# Read-only scope --------------------------------------------------------------------------


def test_read_only_key_can_read_everything(read_only_api, funded_account, make_customer):
    account = funded_account(balance=100)
    customer = make_customer()
    for path in [
        "customers",
        f"customers/{customer.public_id}",
        "accounts",
        f"accounts/{account.public_id}",
        f"accounts/{account.public_id}/balance",
        f"accounts/{account.public_id}/entries",
        "transfers",
        "events",
    ]:
        assert read_only_api.get(path).status_code == 200, path


def test_read_only_key_cannot_write(read_only_api, funded_account, make_customer):
    source = funded_account(balance=1_000)
    destination = funded_account()
    customer = make_customer()
    before = row_counts()

    for path, body in [
        ("customers", {"name": "Mallory"}),
        ("accounts", {"currency": "usd", "customer": customer.public_id}),
        (
            "transfers",
            {
                "source_account": source.public_id,
                "destination_account": destination.public_id,
                "amount": 100,
                "currency": "usd",
            },
        ),
        ("transfers", {"garbage": True}),  # refused for scope before the body is looked at
    ]:
        assert_error(read_only_api.post(path, body), 403, "permission_error")

    # Nothing changed but the audit trail, which records each refused write (RELIABILITY B10).
    denied = AuditLog.objects.filter(action="api_key.write_denied").order_by("pk")
    assert row_counts() == {**before, "AuditLog": before["AuditLog"] + 4}
    assert [row.new_values["path"] for row in denied] == [
        "/api/v1/customers",
        "/api/v1/accounts",
        "/api/v1/transfers",
        "/api/v1/transfers",
    ]
    row = denied.first()
    assert row is not None
    assert (row.actor_type, row.actor, row.object_id) == (
        "api_key",
        read_only_api.api_key.public_id,
        read_only_api.api_key.public_id,
    )
    assert row.request_id.startswith("req_")
    source.refresh_from_db()
    assert source.balance == 1_000


# Audit: who did it --------------------------------------------------------------------------


def test_api_writes_are_audited_with_the_key_and_the_request_id(api, api_key, funded_account):
    key, _ = api_key
    source = funded_account(balance=1_000)
    destination = funded_account()
    start = AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0

    customer = api.post(
        "customers", {"name": "Ada"}, HTTP_X_REQUEST_ID="req-test-1", HTTP_USER_AGENT="tests/1"
    ).json()
    account = api.post(
        "accounts", {"currency": "usd", "customer": customer["id"]}, HTTP_X_REQUEST_ID="req-test-2"
    ).json()
    transfer = api.post(
        "transfers",
        {
            "source_account": source.public_id,
            "destination_account": destination.public_id,
            "amount": 10,
            "currency": "USD",
        },
        HTTP_X_REQUEST_ID="req-test-3",
    ).json()

    rows = {row.object_id: row for row in AuditLog.objects.filter(id__gt=start)}
    assert set(rows) >= {customer["id"], account["id"], transfer["id"]}
    for row in rows.values():
        assert (row.actor_type, row.actor) == ("api_key", key.public_id), row
        assert row.merchant_id == key.merchant_id, row  # the merchant the key acted for
    assert rows[customer["id"]].client_request_id == "req-test-1"
    assert rows[customer["id"]].user_agent == "tests/1"
    assert rows[customer["id"]].ip_address == "127.0.0.1"
    assert rows[account["id"]].client_request_id == "req-test-2"
    assert rows[transfer["id"]].client_request_id == "req-test-3"
    assert rows[transfer["id"]].user_agent == ""
    # The actor is the key's public id, never its secret.
    assert api.secret not in str([r.actor for r in rows.values()])


def test_a_declined_transfer_is_audited_with_the_key(api, api_key, funded_account):
    source = funded_account(balance=5)
    destination = funded_account()

    response = api.post(
        "transfers",
        {
            "source_account": source.public_id,
            "destination_account": destination.public_id,
            "amount": 10,
            "currency": "USD",
        },
        HTTP_X_REQUEST_ID="req-declined",
    )

    failed = assert_error(response, 402, "payment_error", extra={"transfer"})
    row = AuditLog.objects.get(object_id=failed["transfer"])
    assert (row.actor_type, row.actor, row.request_id, row.client_request_id) == (
        "api_key",
        api_key[0].public_id,
        response["X-Request-Id"],
        "req-declined",
    )


def test_options_with_a_read_only_key_audits_nothing(read_only_api):
    response = read_only_api.request("OPTIONS", "customers")
    assert response.status_code == 200
    assert not AuditLog.objects.filter(action="api_key.write_denied").exists()
