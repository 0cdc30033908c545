"""Writing the audit trail and the event outbox, always inside the caller's transaction."""

from collections.abc import Mapping
from typing import Any

from audit.context import current_context
from audit.models import AuditLog, Event
from core.db import insert_rows


def audit_log_build(
    *,
    action: str,
    object_type: str,
    object_id: str,
    old_values: Mapping[str, Any] | None = None,
    new_values: Mapping[str, Any] | None = None,
    reason: str = "",
) -> AuditLog:
    """An unsaved audit row carrying the current actor and request context."""
    old = dict(old_values or {})
    new = dict(new_values or {})
    context = current_context()
    return AuditLog(
        actor_type=context.actor_type,
        actor=context.actor,
        merchant_id=context.merchant_id,
        request_id=context.request_id,
        client_request_id=context.client_request_id,
        ip_address=context.ip_address,
        user_agent=context.user_agent,
        action=action,
        object_type=object_type,
        object_id=object_id,
        old_values=old,
        new_values=new,
        changed_fields=sorted(
            key for key in old.keys() | new.keys() if old.get(key) != new.get(key)
        ),
        reason=reason,
    )


def audit_log_record(**fields: Any) -> AuditLog:
    """Build and insert one audit row (see `audit_log_build` for the fields)."""
    row = audit_log_build(**fields)
    insert_rows([row])
    return row


def change_record(
    *,
    action: str,
    event_type: str,
    merchant_id: int | None,
    object_type: str,
    object_id: str,
    old_values: Mapping[str, Any],
    new_values: Mapping[str, Any],
    reason: str = "",
) -> None:
    """A merchant-visible state change: its audit row (`action`, old and new values) and
    its outbox event (`event_type`, the new values), in the caller's transaction."""
    audit_log_record(
        action=action,
        object_type=object_type,
        object_id=object_id,
        old_values=old_values,
        new_values=new_values,
        reason=reason,
    )
    event_emit(
        merchant_id=merchant_id,
        type=event_type,
        object_type=object_type,
        object_id=object_id,
        data=new_values,
    )


def event_build(
    *, merchant_id: int | None, type: str, object_type: str, object_id: str, data: Mapping[str, Any]
) -> Event:
    """An unsaved event for the outbox, to insert in the transaction that made the change."""
    return Event(
        merchant_id=merchant_id,
        type=type,
        object_type=object_type,
        object_id=object_id,
        data={"object": dict(data)},
    )


def event_emit(
    *, merchant_id: int | None, type: str, object_type: str, object_id: str, data: Mapping[str, Any]
) -> Event:
    """Record an event for the outbox; call inside the transaction that made the change."""
    event = event_build(
        merchant_id=merchant_id, type=type, object_type=object_type, object_id=object_id, data=data
    )
    insert_rows([event])
    return event
