"""Writing the audit trail and the event outbox, always inside the caller's transaction."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from celery import current_app
from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from audit.context import current_context
from audit.models import AuditLog, DeadLetter, DeadLetterStatus, Event
from core.db import insert_rows, insert_rows_together
from core.exceptions import InvalidState

logger = logging.getLogger(__name__)

# Sent once after each commit of a transaction that wrote events: the webhook relay
# (webhooks.apps) listens, so that events go out at once rather than at its next scheduled
# run. audit knows nothing of webhooks (ADR 0012); a missed signal only delays an event.
events_committed = Signal()


def _events_committed() -> None:
    events_committed.send(sender=Event)


def _events_committed_on_commit() -> None:
    """Send `events_committed` after the current transaction commits, once however many
    events it writes (a rolled-back savepoint drops its callbacks, and the check with it).
    Outside a transaction there is nothing to wait for: `event_emit` sends it itself."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return
    if any(callback is _events_committed for _, callback, _ in connection.run_on_commit):
        return
    transaction.on_commit(_events_committed, robust=True)


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
    its outbox event (`event_type`, the new values), in the caller's transaction (one
    statement on PostgreSQL)."""
    insert_rows_together(
        [
            audit_log_build(
                action=action,
                object_type=object_type,
                object_id=object_id,
                old_values=old_values,
                new_values=new_values,
                reason=reason,
            ),
            event_build(
                merchant_id=merchant_id,
                type=event_type,
                object_type=object_type,
                object_id=object_id,
                data=new_values,
            ),
        ]
    )


def event_build(
    *, merchant_id: int | None, type: str, object_type: str, object_id: str, data: Mapping[str, Any]
) -> Event:
    """An unsaved event for the outbox, to insert in the transaction that made the change
    (the relay is told once that transaction commits)."""
    _events_committed_on_commit()
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
    if not transaction.get_connection().in_atomic_block:
        _events_committed()
    return event


def dead_letter_record(
    *,
    kind: str,
    task_name: str,
    object_type: str,
    object_id: str,
    last_error: str,
    attempts: int,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> DeadLetter:
    """Keep work that exhausted its retries (SPEC §3), with an audit row, in the caller's
    transaction (or its own)."""
    with transaction.atomic():
        dead_letter = DeadLetter.objects.create(
            kind=kind,
            task_name=task_name,
            args=list(args),
            kwargs=dict(kwargs or {}),
            object_type=object_type,
            object_id=object_id,
            last_error=last_error[:10_000],
            attempts=attempts,
        )
        audit_log_record(
            action="dead_letter.recorded",
            object_type=object_type,
            object_id=object_id,
            new_values={"dead_letter": dead_letter.pk, "kind": kind, "last_error": last_error},
        )
    logger.error("dead letter %s: %s %s: %s", dead_letter.pk, kind, object_id, last_error)
    return dead_letter


def dead_letter_retry(*, dead_letter: DeadLetter) -> DeadLetter:
    """Send an open dead letter's task again (after commit), audited as the operator's
    action; a dead letter already retried is refused."""
    with transaction.atomic():
        locked = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
        if locked.status != DeadLetterStatus.OPEN:
            raise InvalidState(f"dead letter {locked.pk} is {locked.status}; it was retried")
        task = current_app.tasks.get(locked.task_name)
        if task is None:
            raise InvalidState(f"no task named {locked.task_name!r}", code="task_missing")
        locked.status = DeadLetterStatus.RETRIED
        locked.retried_at = timezone.now()
        locked.save(update_fields=["status", "retried_at"])
        audit_log_record(
            action="dead_letter.retried",
            object_type=locked.object_type,
            object_id=locked.object_id,
            old_values={"status": DeadLetterStatus.OPEN},
            new_values={"dead_letter": locked.pk, "status": locked.status},
        )
        args, kwargs = list(locked.args), dict(locked.kwargs)
        transaction.on_commit(lambda: task.apply_async(args=tuple(args), kwargs=kwargs))
    return locked


def dead_letters_resolve(*, object_type: str, object_id: str) -> int:
    """Mark the open dead letters of an object whose work has ended meanwhile (finished by
    another path, or by a retry) as resolved, so that operators see only what still needs
    them; in the caller's transaction. Returns how many."""
    # Every attempt that ends runs it, and it almost always finds nothing: written out
    # (ADR 0007), the ORM spent more time building it than PostgreSQL running it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {DeadLetter._meta.db_table} SET status = %s"  # noqa: S608 - names only
            " WHERE object_id = %s AND object_type = %s AND status IN (%s, %s)",
            [
                DeadLetterStatus.RESOLVED,
                object_id,
                object_type,
                DeadLetterStatus.OPEN,
                DeadLetterStatus.RETRIED,
            ],
        )
        return cursor.rowcount
