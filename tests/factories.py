"""Factories that build through the services, so test data is audited like real data."""

import itertools
from typing import Any

import factory

from accounts.models import Account, Customer, Merchant
from accounts.services import account_create, customer_create, merchant_create
from ledger.services import adjustment_post

_names = itertools.count(1)


class MerchantFactory(factory.Factory[Merchant]):
    class Meta:
        model = Merchant

    name = factory.LazyFunction(lambda: f"Merchant {next(_names)}")

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Merchant:
        return merchant_create(**kwargs)


class CustomerFactory(factory.Factory[Customer]):
    class Meta:
        model = Customer

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Faker("name")
    email = factory.Faker("email")

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Customer:
        return customer_create(**kwargs)


class AccountFactory(factory.Factory[Account]):
    """`AccountFactory.create(balance=500)` opens a wallet funded by a settlement adjustment."""

    class Meta:
        model = Account

    merchant = factory.SubFactory(MerchantFactory)
    currency = "USD"

    @classmethod
    def _create(cls, model_class: type, *args: Any, balance: int = 0, **kwargs: Any) -> Account:
        account = account_create(**kwargs)
        if balance:
            fund(account, balance)
        return account


def fund(account: Account, amount: int) -> None:
    adjustment_post(account=account, amount=amount, reason="test funding")
    account.refresh_from_db()
