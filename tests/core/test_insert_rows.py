"""core.db.insert_rows: the money path's bulk insert, and instance_from_row."""

import pytest

from audit.models import AuditLog
from core.db import insert_rows, instance_from_row
from core.models import IdempotencyKey, IdempotencyKeyState
from tests.factories import MerchantFactory

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
