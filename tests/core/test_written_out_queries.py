"""core.db's written-out queries for the hot paths: insert_rows, insert_rows_together,
select_one, update_rows, instance_from_row."""

import pytest

from accounts.models import Account
from audit.models import AuditLog, Event
from core.db import (
    insert_rows,
    insert_rows_together,
    instance_from_row,
    select_many,
    select_one,
    update_rows,
)
from core.models import IdempotencyKey, IdempotencyKeyState
from tests.factories import AccountFactory, MerchantFactory

pytestmark = pytest.mark.django_db


def _audit_row(action: str) -> AuditLog:
    return AuditLog(
        actor_type="system",
        actor="test",
        action=action,
        object_type="thing",
        object_id="thing_1",
        new_values={"amount": 10**12, "note": "ünïcode"},
        changed_fields=["amount", "note"],
    )


def test_rows_are_inserted_in_one_statement_with_their_primary_keys(
    django_assert_num_queries: pytest.FixtureRequest,
) -> None:
    rows = [_audit_row("a.one"), _audit_row("a.two")]
    with django_assert_num_queries(1):  # type: ignore[operator]
        assert insert_rows(rows)
    assert all(row.pk and not row._state.adding for row in rows)
    stored = AuditLog.objects.in_bulk([row.pk for row in rows])
    for row in rows:
        saved = stored[row.pk]
        assert (saved.action, saved.new_values, saved.created_at) == (
            row.action,
            {"amount": 10**12, "note": "ünïcode"},
            row.created_at,  # auto_now_add was applied before the insert
        )


def test_a_conflicting_row_is_skipped_when_asked() -> None:
    merchant = MerchantFactory.create()

    def key() -> IdempotencyKey:
        return IdempotencyKey(
            merchant=merchant,
            key="same",
            fingerprint="f",
            request_method="POST",
            request_path="/x",
            state=IdempotencyKeyState.IN_FLIGHT,
        )

    first, second = key(), key()
    assert insert_rows([first], ignore_conflicts=True)
    assert first.pk is not None
    assert not insert_rows([second], ignore_conflicts=True)
    assert second.pk is None
    assert IdempotencyKey.objects.filter(merchant=merchant).count() == 1


def test_instance_from_row_takes_columns_in_any_order() -> None:
    merchant = MerchantFactory.create()
    columns = ("name", "id", "public_id")
    built = instance_from_row(type(merchant), columns, [getattr(merchant, c) for c in columns])
    assert [getattr(built, c) for c in columns] == [getattr(merchant, c) for c in columns]
    assert built.created_at == merchant.created_at  # deferred: loaded on first access


def test_select_one_finds_by_attname_and_field_name() -> None:
    account = AccountFactory.create(balance=250)
    found = select_one(
        Account, merchant_id=account.merchant_id, public_id=account.public_id, kind="wallet"
    )
    assert found is not None
    assert (found.pk, found.balance, found.currency, found.created_at) == (
        account.pk,
        250,
        account.currency,
        account.created_at,
    )
    assert select_one(Account, merchant=account.merchant_id, public_id="acct_missing") is None
    other = MerchantFactory.create()
    assert select_one(Account, merchant_id=other.pk, public_id=account.public_id) is None


def test_update_rows_changes_only_the_rows_matching_every_condition() -> None:
    first, second = AccountFactory.create(), AccountFactory.create()
    assert update_rows(Account, {"id": first.pk, "status": "closed"}, description="x") == 0
    assert update_rows(Account, {"id": first.pk, "status": "active"}, description="x") == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.description, second.description) == ("x", "")


def test_rows_of_several_models_are_inserted_in_one_statement(
    django_assert_num_queries: pytest.FixtureRequest,
) -> None:
    merchant = MerchantFactory.create()
    event = Event(merchant=merchant, type="thing.made", object_type="thing", object_id="t", data={})
    rows = [_audit_row("a.one"), event, _audit_row("a.two")]
    with django_assert_num_queries(1):  # type: ignore[operator]
        insert_rows_together(rows)
    assert all(row.pk and not row._state.adding for row in rows)
    assert Event.objects.get(pk=event.pk).merchant_id == merchant.pk
    actions = AuditLog.objects.filter(pk__in=[rows[0].pk, rows[2].pk]).order_by("pk")
    assert [row.action for row in actions] == ["a.one", "a.two"]  # in the given order


def test_select_many_finds_several_keys_in_one_query(
    django_assert_num_queries: pytest.FixtureRequest,
) -> None:
    first = AccountFactory.create()
    second = AccountFactory.create(merchant=first.merchant)
    other = AccountFactory.create()  # another merchant's
    wanted = [first.public_id, second.public_id, first.public_id, other.public_id, "acct_none"]
    with django_assert_num_queries(1):  # type: ignore[operator]
        found = select_many(Account, "public_id", wanted, merchant_id=first.merchant_id)
    assert {key: account.pk for key, account in found.items()} == {
        first.public_id: first.pk,
        second.public_id: second.pk,
    }
    assert found[first.public_id].balance == first.balance
