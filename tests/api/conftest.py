"""Fixtures for the API tests: a merchant with a key, a client speaking for it, a second
merchant (for tenancy), a read-only key, and funded accounts."""

from collections.abc import Callable

import pytest

from accounts.api_keys import api_key_create
from accounts.models import Account, ApiKey, Customer, Merchant
from tests.api.helpers import ApiClient
from tests.factories import AccountFactory, CustomerFactory, MerchantFactory


@pytest.fixture(autouse=True)
def _db(db: None) -> None:
    """Every API test touches the database."""


@pytest.fixture
def merchant() -> Merchant:
    return MerchantFactory.create()


@pytest.fixture
def other_merchant() -> Merchant:
    return MerchantFactory.create()


@pytest.fixture
def api_key(merchant: Merchant) -> tuple[ApiKey, str]:
    """`merchant`'s read-write key and its secret."""
    return api_key_create(merchant=merchant, name="test")


@pytest.fixture
def api(api_key: tuple[ApiKey, str]) -> ApiClient:
    key, secret = api_key
    return ApiClient(secret, api_key=key)


@pytest.fixture
def read_only_api(merchant: Merchant) -> ApiClient:
    key, secret = api_key_create(merchant=merchant, name="read-only", read_only=True)
    return ApiClient(secret, api_key=key)


@pytest.fixture
def other_merchant_api(other_merchant: Merchant) -> ApiClient:
    key, secret = api_key_create(merchant=other_merchant, name="other")
    return ApiClient(secret, api_key=key)


@pytest.fixture
def anonymous_api() -> ApiClient:
    return ApiClient(None)


@pytest.fixture
def funded_account(merchant: Merchant) -> Callable[..., Account]:
    """`funded_account(balance=1000, currency="USD", merchant=None, customer=None)`:
    a wallet of `merchant` (or the one given) funded by a settlement adjustment."""

    def make(
        balance: int = 0,
        currency: str = "USD",
        merchant: Merchant = merchant,
        customer: Customer | None = None,
    ) -> Account:
        return AccountFactory.create(
            merchant=merchant, currency=currency, balance=balance, customer=customer
        )

    return make


@pytest.fixture
def make_customer(merchant: Merchant) -> Callable[..., Customer]:
    def make(merchant: Merchant = merchant, **fields: object) -> Customer:
        return CustomerFactory.create(merchant=merchant, **fields)

    return make
