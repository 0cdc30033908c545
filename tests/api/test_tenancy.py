"""Tenancy (SPEC §3, RELIABILITY B8 / OWASP API1): merchant B's key never sees or touches
merchant A's objects. Another merchant's object answers exactly as a missing one does.

The matrix is derived from the router in config/api_urls.py, so an endpoint added there is
tested here or fails `test_every_route_is_covered`:
- every route with an `{id}` in its path (retrieve, balance, entries, and any action added
  later), for each of its methods, gets A's id from B's key;
- every list route is read by B, with and without filters naming A's ids;
- every create route needs an entry in CREATE_CASES that puts A's ids in the body.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from django.db.models import Q
from django.urls import URLPattern, URLResolver, reverse

from accounts.models import Account, Customer, Merchant, SystemPurpose
from accounts.system import system_account_get
from audit.models import Event
from config import api_urls
from payments.attempts import attempt_result_apply
from payments.fx import fx_quote_create, fx_rate_set
from payments.models import FxQuote, Payment, PaymentAttempt, Payout, Refund, Transfer
from payments.payments import payment_create
from payments.payouts import payout_create
from payments.providers.base import ProviderResult, ResultStatus
from payments.refunds import refund_create
from payments.services import transfer_create
from tests.api.helpers import (
    ApiClient,
    assert_error,
    assert_foreign_object_denied,
    last_audit_id,
    row_counts,
    transfer_body,
)
from tests.factories import AccountFactory, CustomerFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create


def _routes() -> list[tuple[str, str, bool]]:
    """(route name, HTTP method, whether the path names an object) for every router route."""
    routes = []
    for pattern in api_urls.routes:
        assert isinstance(pattern, URLPattern) and pattern.name, pattern
        actions: dict[str, str] = getattr(pattern.callback, "actions", {})
        assert actions, pattern
        for method in actions:
            routes.append((pattern.name, method, "(?P<id>" in str(pattern.pattern)))
    return sorted(routes)


ROUTES = _routes()
# Routes of config/api_urls.py that are not the router's: none may serve merchant data.
NON_ROUTER_ROUTES = {"api-index", "schema", "docs"}
# A missing id of each resource's shape, to compare B's answers against.
MISSING_IDS = {
    "customer": "cus_0000000000000000000000",
    "account": "acct_0000000000000000000000",
    "transfer": "tr_0000000000000000000000",
    "event": "evt_0000000000000000000000",
    "fx_quote": "fxq_0000000000000000000000",
    "payment": "pay_0000000000000000000000",
    "refund": "re_0000000000000000000000",
    "payout": "po_0000000000000000000000",
    "webhook_endpoint": "we_0000000000000000000000",
    "webhook_delivery": "whd_0000000000000000000000",
}


@dataclass
class World:
    a: Merchant
    b: Merchant
    a_customer: Customer
    a_account: Account
    a_other_account: Account
    a_transfer: Transfer
    a_failed_transfer: Transfer
    b_customer: Customer
    b_account: Account
    b_other_account: Account
    b_transfer: Transfer
    a_quote: FxQuote
    a_payment: Payment
    b_payment: Payment
    a_refund: Refund
    b_refund: Refund
    a_payout: Payout
    b_payout: Payout
    a_webhook_endpoint: WebhookEndpoint
    a_webhook_delivery: WebhookDelivery

    def a_object_id(self, basename: str) -> str:
        """One of A's objects for each resource of the router."""
        return {
            "customer": self.a_customer.public_id,
            "account": self.a_account.public_id,
            "transfer": self.a_transfer.public_id,
            "event": Event.objects.filter(merchant=self.a).order_by("id").first().public_id,  # type: ignore[union-attr]
            "fx_quote": self.a_quote.public_id,
            "payment": self.a_payment.public_id,
            "refund": self.a_refund.public_id,
            "payout": self.a_payout.public_id,
            "webhook_endpoint": self.a_webhook_endpoint.public_id,
            "webhook_delivery": self.a_webhook_delivery.public_id,
        }[basename]

    def a_ids(self) -> set[str]:
        """Every public id that belongs to A, its events, transfers and ledger."""
        ids = {self.a.public_id}
        ids |= set(Customer.objects.filter(merchant=self.a).values_list("public_id", flat=True))
        ids |= set(Account.objects.filter(merchant=self.a).values_list("public_id", flat=True))
        transfers = Transfer.objects.filter(merchant=self.a)
        ids |= set(transfers.values_list("public_id", flat=True))
        ids |= {
            t.ledger_transaction.public_id for t in transfers if t.ledger_transaction is not None
        }
        ids |= set(Event.objects.filter(merchant=self.a).values_list("public_id", flat=True))
        ids |= set(FxQuote.objects.filter(merchant=self.a).values_list("public_id", flat=True))
        payments = Payment.objects.filter(merchant=self.a)
        ids |= set(payments.values_list("public_id", flat=True))
        refunds = Refund.objects.filter(merchant=self.a)
        payouts = Payout.objects.filter(merchant=self.a)
        ids |= set(refunds.values_list("public_id", flat=True))
        ids |= set(payouts.values_list("public_id", flat=True))
        ids |= set(
            PaymentAttempt.objects.filter(
                Q(payment__in=payments) | Q(refund__in=refunds) | Q(payout__in=payouts)
            ).values_list("public_id", flat=True)
        )
        for model in (WebhookEndpoint, WebhookDelivery):
            ids |= set(model.objects.filter(merchant=self.a).values_list("public_id", flat=True))
        return ids


@pytest.fixture
def world(merchant, other_merchant, api, other_merchant_api) -> World:
    a, b = merchant, other_merchant
    a_customer = CustomerFactory.create(merchant=a)
    a_account = AccountFactory.create(merchant=a, customer=a_customer, balance=10_000)
    a_other_account = AccountFactory.create(merchant=a)
    a_transfer = transfer_create(
        merchant=a, source=a_account, destination=a_other_account, amount=1_000
    )
    a_failed = transfer_create(
        merchant=a, source=a_other_account, destination=a_account, amount=999_999
    )
    b_customer = CustomerFactory.create(merchant=b)
    b_account = AccountFactory.create(merchant=b, customer=b_customer, balance=5_000)
    b_other_account = AccountFactory.create(merchant=b)
    b_transfer = transfer_create(
        merchant=b, source=b_account, destination=b_other_account, amount=500
    )
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.92")
    a_quote = fx_quote_create(merchant=a, source_currency="USD", destination_currency="EUR")
    a_payment, b_payment = (
        payment_create(
            merchant=merchant,
            destination=account,
            customer=customer,
            amount=700,
            currency="USD",
            payment_method="pm_card_visa",
            capture_method="manual",
        )
        for merchant, account, customer in [(a, a_account, a_customer), (b, b_account, b_customer)]
    )
    # A succeeded payment each, refunded in part, and a payout each (their tasks never
    # sent: the test's transaction does not commit).
    refunds, payouts = [], []
    for merchant, account in [(a, a_account), (b, b_account)]:
        paid = payment_create(
            merchant=merchant,
            destination=account,
            amount=400,
            currency="USD",
            payment_method="pm_card_visa",
        )
        attempt_result_apply(
            attempt_id=paid.attempts.get().pk,
            result=ProviderResult(
                status=ResultStatus.SUCCEEDED,
                reference=f"pi_{merchant.pk}",
                amount=400,
                currency="USD",
                amount_captured=400,
            ),
        )
        refunds.append(refund_create(merchant=merchant, payment=paid, amount=100))
        payouts.append(
            payout_create(
                merchant=merchant, source=account, amount=50, currency="USD", destination="ba_ok"
            )
        )
    a_endpoint, _ = (  # B has one too: its list is not empty
        webhook_endpoint_create(
            merchant=merchant, url="https://93.184.216.34/hooks", enabled_events=["*"]
        )[0]
        for merchant in (a, b)
    )
    # The relay runs after commits, which this test's transaction never makes: by hand.
    a_delivery = WebhookDelivery.objects.create(
        event=Event.objects.filter(merchant=a)[0], endpoint=a_endpoint, merchant=a
    )
    return World(
        a=a,
        b=b,
        a_customer=a_customer,
        a_account=a_account,
        a_other_account=a_other_account,
        a_transfer=a_transfer,
        a_failed_transfer=a_failed,
        b_customer=b_customer,
        b_account=b_account,
        b_other_account=b_other_account,
        b_transfer=b_transfer,
        a_quote=a_quote,
        a_payment=a_payment,
        b_payment=b_payment,
        a_refund=refunds[0],
        b_refund=refunds[1],
        a_payout=payouts[0],
        b_payout=payouts[1],
        a_webhook_endpoint=a_endpoint,
        a_webhook_delivery=a_delivery,
    )


def strings_in(value: Any) -> Iterator[str]:
    """Every string anywhere in a JSON document, keys and values."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def call(client: ApiClient, method: str, path: str, body: Any = None) -> Any:
    if method == "get":
        return client.get(path)
    return client.request(method.upper(), path, body if body is not None else {})


# Create routes: B's request with A's ids in the body -----------------------------------------


def _customer_create(world: World, b: ApiClient) -> None:
    # No ids to name; B's customer is B's, and A cannot see it.
    before = Customer.objects.filter(merchant=world.a).count()
    response = b.post("customers", {"name": "B's customer"})
    assert response.status_code == 201, response.content
    created = Customer.objects.get(public_id=response.json()["id"])
    assert created.merchant_id == world.b.pk
    assert Customer.objects.filter(merchant=world.a).count() == before
    # Naming a merchant is mass assignment, not a way into A's tenancy (B9).
    counts = row_counts()
    assert_error(
        b.post("customers", {"name": "x", "merchant": world.a.public_id}),
        400,
        "invalid_request_error",
        param="merchant",
    )
    assert row_counts() == counts


def _account_create(world: World, b: ApiClient) -> None:
    a_customer = world.a_customer.public_id
    assert_refused_like_missing(
        b,
        "accounts",
        {"currency": "usd", "customer": a_customer},
        {"currency": "usd", "customer": MISSING_IDS["customer"]},
        param="customer",
        named=[(a_customer, "customer")],
    )
    # The unknown parameter is refused before any id is looked up: no attempt to record.
    assert_refused_like_missing(
        b,
        "accounts",
        {"currency": "usd", "customer": a_customer, "merchant": world.a.public_id},
        None,
        param=None,
        status=400,
        named=[],
    )


def _transfer_create(world: World, b: ApiClient) -> None:
    a_acct, a_other = world.a_account.public_id, world.a_other_account.public_id
    b_acct = world.b_account.public_id
    missing = MISSING_IDS["account"]
    balances = dict(Account.objects.values_list("public_id", "balance"))
    cases = [
        (
            transfer_body(a_acct, b_acct),
            transfer_body(missing, b_acct),
            "source_account",
            [(a_acct, "source_account")],
        ),
        (
            transfer_body(b_acct, a_acct),
            transfer_body(b_acct, missing),
            "destination_account",
            [(a_acct, "destination_account")],
        ),
        (
            transfer_body(a_acct, a_other),
            transfer_body(missing, missing),
            "source_account",
            # The first refused field ends the request: its id alone is looked for.
            [(a_acct, "source_account")],
        ),
    ]
    for refused, like, param, named in cases:
        assert_refused_like_missing(b, "transfers", refused, like, param=param, named=named)
    # A's FX quote in B's cross-currency transfer: the 400 of an unknown quote.
    b_euros = AccountFactory.create(merchant=world.b, currency="EUR").public_id
    a_quote = world.a_quote.public_id
    assert_refused_like_missing(
        b,
        "transfers",
        {**transfer_body(b_acct, b_euros), "fx_quote": a_quote},
        {**transfer_body(b_acct, b_euros), "fx_quote": MISSING_IDS["fx_quote"]},
        param="fx_quote",
        named=[(a_quote, "fx_quote")],
        status=400,
    )
    assert dict(Account.objects.values_list("public_id", "balance")) == {**balances, b_euros: 0}


def _fx_quote_create(world: World, b: ApiClient) -> None:
    # No ids to name; B's quote is B's, at B's spread, and A cannot see it.
    response = b.post("fx_quotes", {"source_currency": "usd", "destination_currency": "eur"})
    assert response.status_code == 201, response.content
    assert FxQuote.objects.get(public_id=response.json()["id"]).merchant_id == world.b.pk
    counts = row_counts()
    assert_error(
        b.post(
            "fx_quotes",
            {
                "source_currency": "usd",
                "destination_currency": "eur",
                "merchant": world.a.public_id,
            },
        ),
        400,
        "invalid_request_error",
        param="merchant",
    )
    assert row_counts() == counts


def _payment_create(world: World, b: ApiClient) -> None:
    a_acct, a_customer = world.a_account.public_id, world.a_customer.public_id
    b_acct, b_customer = world.b_account.public_id, world.b_customer.public_id

    def body(account: str, customer: str) -> dict[str, Any]:
        return {
            "amount": 100,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "destination_account": account,
            "customer": customer,
        }

    assert_refused_like_missing(
        b,
        "payments",
        body(a_acct, b_customer),
        body(MISSING_IDS["account"], b_customer),
        param="destination_account",
        named=[(a_acct, "destination_account")],
    )
    assert_refused_like_missing(
        b,
        "payments",
        body(b_acct, a_customer),
        body(b_acct, MISSING_IDS["customer"]),
        param="customer",
        named=[(a_customer, "customer")],
    )


def _refund_create(world: World, b: ApiClient) -> None:
    a_payment = world.a_refund.payment.public_id
    assert_refused_like_missing(
        b,
        "refunds",
        {"payment": a_payment, "amount": 1},
        {"payment": MISSING_IDS["payment"], "amount": 1},
        param="payment",
        named=[(a_payment, "payment")],
    )


def _payout_create(world: World, b: ApiClient) -> None:
    a_acct = world.a_account.public_id

    def body(account: str) -> dict[str, Any]:
        return {"source_account": account, "amount": 1, "currency": "usd", "destination": "ba_ok"}

    assert_refused_like_missing(
        b,
        "payouts",
        body(a_acct),
        body(MISSING_IDS["account"]),
        param="source_account",
        named=[(a_acct, "source_account")],
    )


def _webhook_endpoint_create(world: World, b: ApiClient) -> None:
    # No ids to name; B's endpoint is B's, and A cannot see it.
    body = {"url": "https://93.184.216.34/b", "enabled_events": ["*"]}
    response = b.post("webhook_endpoints", body)
    assert response.status_code == 201, response.content
    created = WebhookEndpoint.objects.get(public_id=response.json()["id"])
    assert created.merchant_id == world.b.pk
    counts = row_counts()
    assert_error(
        b.post("webhook_endpoints", {**body, "merchant": world.a.public_id}),
        400,
        "invalid_request_error",
        param="merchant",
    )
    assert row_counts() == counts


CREATE_CASES: dict[str, Callable[[World, ApiClient], None]] = {
    "customer-list": _customer_create,
    "account-list": _account_create,
    "transfer-list": _transfer_create,
    "fx_quote-list": _fx_quote_create,
    "payment-list": _payment_create,
    "refund-list": _refund_create,
    "payout-list": _payout_create,
    "webhook_endpoint-list": _webhook_endpoint_create,
}


def assert_refused_like_missing(
    client: ApiClient,
    path: str,
    body: dict[str, Any],
    like_missing: dict[str, Any] | None,
    *,
    param: str | None,
    named: Sequence[tuple[str, str | None]],
    status: int = 404,
) -> None:
    """B's POST with A's ids is refused as if the ids did not exist, and writes nothing but
    the audit rows of the denied attempt, one per (id, body field) in `named`."""
    before, audit_before = row_counts(), last_audit_id()
    response = client.post(path, body)
    error_type = "not_found" if status == 404 else "invalid_request_error"
    error = assert_error(response, status, error_type, param=param if status == 404 else ...)
    assert_foreign_object_denied(
        response, client, counts_before=before, audit_id_before=audit_before, named=named
    )
    before = row_counts()
    if like_missing is not None:
        missing = assert_error(client.post(path, like_missing), status, error_type, param=param)
        assert (error["type"], error["code"], error["param"]) == (
            missing["type"],
            missing["code"],
            missing["param"],
        )
        assert row_counts() == before, path
    # A's ids are named back only as the caller sent them: nothing else about them leaks.
    for value in strings_in(response.json()):
        assert "mer_" not in value


# The matrix --------------------------------------------------------------------------------


def test_the_router_has_routes():
    assert len(ROUTES) >= 12


def test_every_route_is_covered():
    uncovered = [
        (name, method)
        for name, method, has_id in ROUTES
        if not has_id and method != "get" and name not in CREATE_CASES
    ]
    assert uncovered == [], f"add these to the tenancy matrix: {uncovered}"
    basenames = {name.rsplit("-", 1)[0] for name, _, _ in ROUTES}
    assert basenames <= set(MISSING_IDS), f"add A's objects for: {basenames - set(MISSING_IDS)}"
    assert set(CREATE_CASES) <= {name for name, _, _ in ROUTES}, "stale CREATE_CASES"


def test_no_other_api_route_serves_merchant_data():
    for entry in api_urls.urlpatterns:
        if isinstance(entry, URLResolver):
            assert entry.url_patterns == api_urls.routes, entry
        else:
            assert isinstance(entry, URLPattern)
            assert entry.name in NON_ROUTER_ROUTES, f"{entry.pattern} is not in the matrix"


@pytest.mark.parametrize(
    ("name", "method"),
    [(name, method) for name, method, has_id in ROUTES if has_id],
    ids=lambda value: value,
)
def test_another_merchants_id_in_the_path_is_404_like_a_missing_one(
    name, method, world, api, other_merchant_api
):
    basename = name.rsplit("-", 1)[0]
    a_path = reverse(name, kwargs={"id": world.a_object_id(basename)})
    missing_path = reverse(name, kwargs={"id": MISSING_IDS[basename]})
    a_id = world.a_object_id(basename)
    if method == "get":  # the matrix is not vacuous: A itself gets its object
        assert api.get(a_path).status_code == 200
    before, audit_before = row_counts(), last_audit_id()

    response = call(other_merchant_api, method, a_path)
    assert_foreign_object_denied(
        response,
        other_merchant_api,
        counts_before=before,
        audit_id_before=audit_before,
        named=[(a_id, None)],
    )
    before = row_counts()
    like_missing = call(other_merchant_api, method, missing_path)

    assert_error(response, 404, "not_found", param=None)
    assert (response.status_code, json.loads(response.content)) == (
        like_missing.status_code,
        json.loads(like_missing.content),
    )
    assert row_counts() == before  # a missing id is no attempt on anyone's object


LIST_QUERIES = [
    {},
    {"customer": "{a_customer}"},
    {"account": "{a_account}"},
    {"merchant": "{a}"},
    {"merchant_id": "{a}"},
    {"customer": "{a_customer}", "account": "{a_account}", "type": "customer.created"},
    {"page_size": "100"},
]


@pytest.mark.parametrize(
    "name", sorted({name for name, method, has_id in ROUTES if not has_id and method == "get"})
)
@pytest.mark.parametrize("query", LIST_QUERIES, ids=lambda query: ",".join(query) or "plain")
def test_lists_never_show_another_merchants_objects(name, query, world, api, other_merchant_api):
    values = {
        "a": world.a.public_id,
        "a_customer": world.a_customer.public_id,
        "a_account": world.a_account.public_id,
    }
    params = {key: value.format(**values) for key, value in query.items()}
    a_ids = world.a_ids()

    response = other_merchant_api.get(reverse(name), params)

    assert response.status_code == 200, response.content
    leaked = set(strings_in(response.json())) & a_ids
    assert leaked == set(), f"{name} {params} shows A's {leaked}"
    if not ({"customer", "account"} & set(params)):
        # Not vacuous: B sees its own objects in the same list, A sees its own.
        assert response.json()["results"], name
        a_sees = set(strings_in(api.get(reverse(name), params).json()))
        assert a_sees & a_ids


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("accounts", {"customer": "a_customer"}),
        ("transfers", {"account": "a_account"}),
        ("transfers", {"account": "a_other_account"}),
    ],
)
def test_filters_naming_another_merchants_ids_find_nothing(
    path, params, world, api, other_merchant_api
):
    query = {key: getattr(world, value).public_id for key, value in params.items()}

    assert api.get(path, query).json()["results"]  # A's own filter finds them
    assert other_merchant_api.get(path, query).json()["results"] == []


@pytest.mark.parametrize("name", sorted(CREATE_CASES))
def test_another_merchants_ids_in_a_create_body_are_404(name, world, other_merchant_api):
    CREATE_CASES[name](world, other_merchant_api)


def test_ids_are_random_not_sequential(world):
    # No existence oracle by counting: ids carry 128 random bits after their prefix.
    ids = [world.a_customer.public_id, world.b_customer.public_id]
    assert all(len(i.split("_", 1)[1]) == 22 for i in ids)
    assert ids[0][4:] != ids[1][4:]


def test_the_platforms_system_accounts_are_no_merchants(world, api):
    # Funding went through the settlement account: it exists, has entries, and belongs to
    # no merchant, so no key can read it or move money through it.
    settlement = system_account_get(currency="USD", purpose=SystemPurpose.SETTLEMENT)
    for path in [
        f"accounts/{settlement.public_id}",
        f"accounts/{settlement.public_id}/balance",
        f"accounts/{settlement.public_id}/balance?as_of=2020-01-01T00:00:00Z",
        f"accounts/{settlement.public_id}/entries",
    ]:
        before, audit_before = row_counts(), last_audit_id()
        response = api.get(path)
        assert_error(response, 404, "not_found")
        assert_foreign_object_denied(
            response,
            api,
            counts_before=before,
            audit_id_before=audit_before,
            named=[(settlement.public_id, None)],
        )
    for field in ["source_account", "destination_account"]:
        body = {
            "source_account": world.a_account.public_id,
            "destination_account": world.a_other_account.public_id,
            "amount": 1,
            "currency": "USD",
            field: settlement.public_id,
        }
        assert_refused_like_missing(
            api, "transfers", body, None, param=field, named=[(settlement.public_id, field)]
        )
