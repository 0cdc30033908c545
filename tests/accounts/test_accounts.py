"""Merchants, customers and accounts: opening them, and freezing, unfreezing and closing."""

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

import audit.services
from accounts.models import Account, AccountKind, AccountStatus, Customer, Merchant, SystemPurpose
from accounts.services import (
    account_close,
    account_create,
    account_freeze,
    account_unfreeze,
    customer_create,
    merchant_create,
)
from accounts.system import system_account_get, system_accounts_get
from audit.models import AuditLog, Event
from core.amounts import MAX_AMOUNT
from core.exceptions import AccountInactive, InvalidState, ValidationError
from ledger.holds import hold_create
from ledger.services import Leg, adjustment_post, ledger_transaction_post
from tests.bad_inputs import BAD_METADATA, bad_text
from tests.factories import AccountFactory, CustomerFactory, MerchantFactory

pytestmark = pytest.mark.django_db

StatusChange = Callable[..., Account]


class Boom(Exception):
    """Raised by a patched collaborator to abort a service half-way."""


def _explode(**_: object) -> None:
    raise Boom


# --- merchants ------------------------------------------------------------------------------


def test_merchant_create_writes_an_audit_row() -> None:
    merchant = merchant_create(name="  Acme Ltd  ")

    assert merchant.name == "Acme Ltd"
    row = AuditLog.objects.get(action="merchant.created", object_id=merchant.public_id)
    assert row.new_values == {"name": "Acme Ltd"}


def test_merchant_create_refuses_a_blank_name() -> None:
    with pytest.raises(ValidationError) as refused:
        merchant_create(name="   ")

    assert refused.value.param == "name"


@pytest.mark.parametrize("name", [*bad_text(200), pytest.param("   ", id="blank")])
def test_merchant_create_refuses_a_malformed_name(name: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        merchant_create(name=name)

    assert refused.value.param == "name"
    assert not Merchant.objects.exists()
    assert not AuditLog.objects.exists()


def test_merchant_name_may_fill_its_column() -> None:
    assert merchant_create(name="m" * 200).name == "m" * 200


# --- customers ------------------------------------------------------------------------------


def test_customer_public_id_has_the_cus_prefix() -> None:
    customer = CustomerFactory.create()

    assert customer.public_id.startswith("cus_")
    assert len(customer.public_id) == len("cus_") + 22


def test_customer_create_writes_audit_row_and_event() -> None:
    merchant = MerchantFactory.create()

    customer = customer_create(
        merchant=merchant, name="Ada", email="ada@example.com", metadata={"tier": "gold"}
    )

    row = AuditLog.objects.get(action="customer.created", object_id=customer.public_id)
    assert row.object_type == "customer"
    assert row.new_values["email"] == "ada@example.com"
    assert row.new_values["metadata"] == {"tier": "gold"}
    event = Event.objects.get(type="customer.created", object_id=customer.public_id)
    assert event.merchant == merchant
    assert event.data["object"]["id"] == customer.public_id


def test_customer_create_writes_nothing_when_its_event_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchant = MerchantFactory.create()
    monkeypatch.setattr("accounts.services.event_emit", _explode)

    with pytest.raises(Boom):
        customer_create(merchant=merchant, name="Ada")

    assert not Customer.objects.exists()
    assert not AuditLog.objects.filter(action="customer.created").exists()


@pytest.mark.parametrize(
    ("param", "value"),
    [
        *[("name", value) for value in bad_text(200)],
        *[("email", value) for value in bad_text(254)],
        *[("external_reference", value) for value in bad_text(200)],
        *[("metadata", value) for value in BAD_METADATA],
    ],
)
def test_customer_create_refuses_malformed_text_and_metadata(param: str, value: Any) -> None:
    merchant = MerchantFactory.create()
    audit_rows_before = AuditLog.objects.count()

    with pytest.raises(ValidationError) as refused:
        customer_create(merchant=merchant, **{param: value})

    assert refused.value.param == param
    assert not Customer.objects.exists()
    assert AuditLog.objects.count() == audit_rows_before
    assert not Event.objects.exists()


def test_customer_metadata_at_its_limits_is_accepted() -> None:
    metadata = {f"{i:02d}" + "k" * 38: "v" * 500 for i in range(20)}

    customer = customer_create(merchant=MerchantFactory.create(), metadata=metadata)

    customer.refresh_from_db()
    assert customer.metadata == metadata


# --- accounts -------------------------------------------------------------------------------


def test_account_public_id_has_the_acct_prefix() -> None:
    account = AccountFactory.create()

    assert account.public_id.startswith("acct_")
    assert len(account.public_id) == len("acct_") + 22


def test_new_account_is_an_active_empty_wallet() -> None:
    account = AccountFactory.create()

    assert account.status == AccountStatus.ACTIVE
    assert (account.balance, account.held, account.available) == (0, 0, 0)


@pytest.mark.parametrize(("given", "stored"), [("usd", "USD"), (" eur ", "EUR"), ("jPy", "JPY")])
def test_account_currency_is_normalised_to_upper_case(given: str, stored: str) -> None:
    account = account_create(merchant=MerchantFactory.create(), currency=given)

    account.refresh_from_db()
    assert account.currency == stored


@pytest.mark.parametrize("currency", ["ZZZ", "US", "XXX", "", "dollars"])
def test_account_create_refuses_an_unknown_currency(currency: str) -> None:
    with pytest.raises(ValidationError) as refused:
        account_create(merchant=MerchantFactory.create(), currency=currency)

    assert (refused.value.code, refused.value.param) == ("invalid_currency", "currency")
    assert not Account.objects.exists()


def test_account_create_refuses_a_customer_of_another_merchant() -> None:
    stranger = CustomerFactory.create()

    with pytest.raises(ValidationError) as refused:
        account_create(merchant=MerchantFactory.create(), currency="USD", customer=stranger)

    assert (refused.value.code, refused.value.param) == ("resource_missing", "customer")
    assert not Account.objects.exists()


def test_account_create_accepts_the_merchants_own_customer() -> None:
    customer = CustomerFactory.create()

    account = account_create(merchant=customer.merchant, currency="USD", customer=customer)

    assert account.customer == customer


@pytest.mark.parametrize(
    "overdraft_limit", [-1, 1.5, "100", None, True, MAX_AMOUNT + 1, 2**63, -(2**63) - 1]
)
def test_account_create_refuses_a_malformed_overdraft_limit(overdraft_limit: object) -> None:
    with pytest.raises(ValidationError) as refused:
        account_create(
            merchant=MerchantFactory.create(),
            currency="USD",
            overdraft_limit=overdraft_limit,  # type: ignore[arg-type]
        )

    assert refused.value.param == "overdraft_limit"
    assert not Account.objects.exists()


def test_account_create_accepts_the_maximum_overdraft_limit() -> None:
    account = account_create(
        merchant=MerchantFactory.create(), currency="USD", overdraft_limit=MAX_AMOUNT
    )

    assert Account.objects.get(pk=account.pk).overdraft_limit == MAX_AMOUNT


@pytest.mark.parametrize(
    ("param", "value"),
    [
        *[("description", value) for value in bad_text(200)],
        *[("metadata", value) for value in BAD_METADATA],
    ],
)
def test_account_create_refuses_malformed_text_and_metadata(param: str, value: Any) -> None:
    merchant = MerchantFactory.create()
    audit_rows_before = AuditLog.objects.count()

    with pytest.raises(ValidationError) as refused:
        account_create(merchant=merchant, currency="USD", **{param: value})

    assert refused.value.param == param
    assert not Account.objects.exists()
    assert AuditLog.objects.count() == audit_rows_before
    assert not Event.objects.exists()


def test_account_create_writes_audit_row_and_event() -> None:
    merchant = MerchantFactory.create()

    account = account_create(merchant=merchant, currency="usd", description="Main wallet")

    row = AuditLog.objects.get(action="account.created", object_id=account.public_id)
    assert row.old_values == {}
    assert row.new_values["currency"] == "USD"
    assert row.new_values["status"] == "active"
    event = Event.objects.get(type="account.created", object_id=account.public_id)
    assert event.merchant == merchant
    assert event.data["object"]["description"] == "Main wallet"


def test_account_create_writes_nothing_when_its_event_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchant = MerchantFactory.create()
    build = audit.services.event_build

    def refused(**fields: Any) -> Event:
        event = build(**fields)
        event.type = "x" * 65  # longer than its column: PostgreSQL refuses the row
        return event

    # The audit row and the event go in one statement: the event refused, neither is kept.
    monkeypatch.setattr(audit.services, "event_build", refused)

    with pytest.raises(DataError):
        account_create(merchant=merchant, currency="USD")

    assert not Account.objects.exists()
    assert not AuditLog.objects.filter(action="account.created").exists()


# --- freezing -------------------------------------------------------------------------------


def test_freeze_makes_the_account_frozen() -> None:
    account = account_freeze(account=AccountFactory.create(), reason="KYC review")

    account.refresh_from_db()
    assert account.status == AccountStatus.FROZEN


@pytest.mark.parametrize("service", [account_freeze, account_unfreeze, account_close])
@pytest.mark.parametrize("reason", ["", "   "])
def test_status_change_requires_a_reason(service: StatusChange, reason: str) -> None:
    account = AccountFactory.create()

    with pytest.raises(ValidationError) as refused:
        service(account=account, reason=reason)

    assert refused.value.param == "reason"
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE


@pytest.mark.parametrize("service", [account_freeze, account_unfreeze, account_close])
@pytest.mark.parametrize("reason", bad_text(500))
def test_status_change_refuses_a_malformed_reason(service: StatusChange, reason: Any) -> None:
    account = AccountFactory.create()
    audit_rows_before = AuditLog.objects.count()

    with pytest.raises(ValidationError) as refused:
        service(account=account, reason=reason)

    assert refused.value.param == "reason"
    assert Account.objects.get(pk=account.pk).status == AccountStatus.ACTIVE
    assert AuditLog.objects.count() == audit_rows_before


def test_frozen_account_cannot_receive() -> None:
    account = account_freeze(account=AccountFactory.create(), reason="KYC review")

    with pytest.raises(AccountInactive):
        adjustment_post(account=account, amount=100, reason="credit")

    account.refresh_from_db()
    assert account.balance == 0


def test_frozen_account_cannot_send() -> None:
    account = AccountFactory.create(balance=1_000)
    account_freeze(account=account, reason="KYC review")

    with pytest.raises(AccountInactive):
        adjustment_post(account=account, amount=-100, reason="debit")

    account.refresh_from_db()
    assert account.balance == 1_000


def test_frozen_account_cannot_send_to_another_wallet() -> None:
    source = AccountFactory.create(balance=1_000)
    destination = AccountFactory.create(merchant=source.merchant)
    account_freeze(account=source, reason="KYC review")

    with pytest.raises(AccountInactive), transaction.atomic():
        ledger_transaction_post(
            kind="transfer",
            legs=[Leg(account=source, amount=-100), Leg(account=destination, amount=100)],
        )

    destination.refresh_from_db()
    assert destination.balance == 0


def test_frozen_account_cannot_receive_from_another_wallet() -> None:
    source = AccountFactory.create(balance=1_000)
    destination = AccountFactory.create(merchant=source.merchant)
    account_freeze(account=destination, reason="KYC review")

    with pytest.raises(AccountInactive), transaction.atomic():
        ledger_transaction_post(
            kind="transfer",
            legs=[Leg(account=source, amount=-100), Leg(account=destination, amount=100)],
        )

    source.refresh_from_db()
    assert source.balance == 1_000


def test_frozen_account_cannot_place_a_hold() -> None:
    account = AccountFactory.create(balance=1_000)
    account_freeze(account=account, reason="KYC review")

    with pytest.raises(AccountInactive):
        hold_create(account=account, amount=100)


def test_unfrozen_account_moves_money_again() -> None:
    account = AccountFactory.create()
    account_freeze(account=account, reason="KYC review")
    account_unfreeze(account=account, reason="KYC passed")

    adjustment_post(account=account, amount=100, reason="credit")

    account.refresh_from_db()
    assert (account.status, account.balance) == (AccountStatus.ACTIVE, 100)


def test_freeze_writes_audit_row_with_old_and_new_values_and_reason() -> None:
    account = AccountFactory.create()

    account_freeze(account=account, reason="KYC review")

    row = AuditLog.objects.get(action="account.frozen", object_id=account.public_id)
    assert row.old_values["status"] == "active"
    assert row.new_values["status"] == "frozen"
    assert row.changed_fields == ["status"]
    assert row.reason == "KYC review"


def test_unfreeze_writes_audit_row_with_old_and_new_values_and_reason() -> None:
    account = AccountFactory.create()
    account_freeze(account=account, reason="KYC review")

    account_unfreeze(account=account, reason="KYC passed")

    row = AuditLog.objects.get(action="account.unfrozen", object_id=account.public_id)
    assert (row.old_values["status"], row.new_values["status"]) == ("frozen", "active")
    assert row.reason == "KYC passed"


def test_close_writes_audit_row_with_old_and_new_values_and_reason() -> None:
    account = AccountFactory.create()

    account_close(account=account, reason="customer left")

    row = AuditLog.objects.get(action="account.closed", object_id=account.public_id)
    assert (row.old_values["status"], row.new_values["status"]) == ("active", "closed")
    assert row.reason == "customer left"


@pytest.mark.parametrize(
    ("service", "status"),
    [(account_freeze, "frozen"), (account_close, "closed")],
)
def test_status_change_emits_account_updated_event(service: StatusChange, status: str) -> None:
    account = AccountFactory.create()

    service(account=account, reason="ops")

    event = Event.objects.get(type="account.updated", object_id=account.public_id)
    assert event.merchant_id == account.merchant_id
    assert event.data["object"]["status"] == status


def test_status_change_is_recorded_by_simple_history() -> None:
    account = AccountFactory.create()

    account_freeze(account=account, reason="KYC review")

    newest = account.history.first()
    assert newest.history_type == "~"
    assert newest.status == AccountStatus.FROZEN
    assert [record.status for record in account.history.order_by("history_id")] == [
        AccountStatus.ACTIVE,
        AccountStatus.FROZEN,
    ]


# --- closing --------------------------------------------------------------------------------


def test_close_an_empty_account() -> None:
    account = account_close(account=AccountFactory.create(), reason="customer left")

    account.refresh_from_db()
    assert account.status == AccountStatus.CLOSED


def test_close_a_frozen_empty_account() -> None:
    account = AccountFactory.create()
    account_freeze(account=account, reason="fraud suspected")

    account_close(account=account, reason="fraud confirmed")

    account.refresh_from_db()
    assert account.status == AccountStatus.CLOSED


def test_close_refuses_an_account_with_a_balance() -> None:
    account = AccountFactory.create(balance=1)

    with pytest.raises(InvalidState) as refused:
        account_close(account=account, reason="customer left")

    assert refused.value.code == "account_not_empty"
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE
    assert not AuditLog.objects.filter(action="account.closed").exists()


def test_close_refuses_an_account_with_an_active_hold() -> None:
    # Only an overdraft lets a hold sit on an account whose balance is zero.
    account = account_create(merchant=MerchantFactory.create(), currency="USD", overdraft_limit=500)
    hold_create(account=account, amount=100)

    with pytest.raises(InvalidState) as refused:
        account_close(account=account, reason="customer left")

    assert refused.value.code == "account_not_empty"


def test_closed_account_cannot_receive() -> None:
    account = account_close(account=AccountFactory.create(), reason="customer left")

    with pytest.raises(AccountInactive):
        adjustment_post(account=account, amount=100, reason="credit")


@pytest.mark.parametrize(
    ("setup", "service"),
    [
        ([], account_unfreeze),
        ([account_freeze], account_freeze),
        ([account_close], account_freeze),
        ([account_close], account_unfreeze),
        ([account_close], account_close),
    ],
    ids=[
        "unfreeze-active",
        "freeze-frozen",
        "freeze-closed",
        "unfreeze-closed",
        "close-closed",
    ],
)
def test_invalid_status_transition_is_refused(
    setup: list[StatusChange], service: StatusChange
) -> None:
    account = AccountFactory.create()
    for step in setup:
        step(account=account, reason="setup")
    status_before = Account.objects.get(pk=account.pk).status
    audit_rows_before = AuditLog.objects.count()

    with pytest.raises(InvalidState):
        service(account=account, reason="ops")

    assert Account.objects.get(pk=account.pk).status == status_before
    assert AuditLog.objects.count() == audit_rows_before


# --- system accounts ------------------------------------------------------------------------


def test_system_account_is_created_once_with_an_audit_row() -> None:
    created = system_account_get(currency="USD", purpose=SystemPurpose.FX)
    again = system_account_get(currency="USD", purpose=SystemPurpose.FX)

    assert again == created
    assert (created.kind, created.merchant_id) == (AccountKind.SYSTEM, None)
    row = AuditLog.objects.get(action="account.created", object_id=created.public_id)
    assert row.object_type == "account"
    assert (row.new_values["currency"], row.new_values["status"]) == ("USD", "active")
    assert not Event.objects.filter(object_id=created.public_id).exists()


def test_several_system_accounts_are_read_in_one_query_and_the_missing_created() -> None:
    fees = system_account_get(currency="USD", purpose=SystemPurpose.PLATFORM_FEES)

    with CaptureQueriesContext(connection) as queries:
        both = system_accounts_get(
            currency="usd", purposes=[SystemPurpose.PLATFORM_FEES, SystemPurpose.FX]
        )
    assert both[SystemPurpose.PLATFORM_FEES] == fees
    created = both[SystemPurpose.FX]
    assert (created.kind, created.currency, created.system_purpose) == (
        AccountKind.SYSTEM,
        "USD",
        SystemPurpose.FX,
    )
    assert AuditLog.objects.filter(action="account.created", object_id=created.public_id).exists()

    with CaptureQueriesContext(connection) as again:
        assert system_accounts_get(
            currency="USD", purposes=[SystemPurpose.FX, SystemPurpose.PLATFORM_FEES]
        ) == {SystemPurpose.FX: created, SystemPurpose.PLATFORM_FEES: fees}
    assert len(again.captured_queries) == 1
    assert len(queries.captured_queries) > 1  # the FX account was created


@pytest.mark.parametrize("currency", ["usd", " Usd "])
def test_system_account_currency_is_normalised(currency: str) -> None:
    usd = system_account_get(currency="USD", purpose=SystemPurpose.SETTLEMENT)

    assert system_account_get(currency=currency, purpose=SystemPurpose.SETTLEMENT) == usd
    assert Account.objects.filter(kind=AccountKind.SYSTEM).count() == 1
    assert AuditLog.objects.filter(action="account.created").count() == 1


@pytest.mark.parametrize("currency", ["ZZZ", "XXX", ""])
def test_system_account_for_an_unknown_currency_is_refused(currency: str) -> None:
    with pytest.raises(ValidationError) as refused:
        system_account_get(currency=currency, purpose=SystemPurpose.SETTLEMENT)

    assert refused.value.param == "currency"
    assert not Account.objects.exists()


@pytest.mark.parametrize("service", [account_freeze, account_unfreeze, account_close])
def test_system_account_status_cannot_be_changed(service: StatusChange) -> None:
    settlement = system_account_get(currency="USD", purpose=SystemPurpose.SETTLEMENT)
    audit_rows_before = AuditLog.objects.count()

    with pytest.raises(ValidationError) as refused:
        service(account=settlement, reason="ops")

    assert (refused.value.code, refused.value.param) == ("system_account", "account")
    assert Account.objects.get(pk=settlement.pk).status == AccountStatus.ACTIVE
    assert AuditLog.objects.count() == audit_rows_before
