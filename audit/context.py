"""Who is acting, and from where: bound per request, task or command with contextvars."""

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from django.http import HttpRequest

logger = logging.getLogger(__name__)


class ActorType:
    STAFF = "staff"
    API_KEY = "api_key"
    WORKER = "worker"
    COMMAND = "command"
    SYSTEM = "system"

    choices = [
        (STAFF, "Staff user"),
        (API_KEY, "API key"),
        (WORKER, "Worker"),
        (COMMAND, "Command"),
        (SYSTEM, "System"),
    ]


@dataclass(frozen=True)
class AuditContext:
    actor_type: str = ActorType.SYSTEM
    actor: str = ""
    # The merchant an API key acts for (its pk), None for staff, workers and commands.
    merchant_id: int | None = None
    request_id: str = ""
    client_request_id: str = ""
    ip_address: str | None = None
    user_agent: str = ""
    # True inside a `bind` block (a request, command or task said who acts); False for the
    # default context of code that nothing bound.
    bound: bool = False


_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "audit_context",
    default=AuditContext(),  # noqa: B039 - frozen dataclass, never mutated
)


def current_context() -> AuditContext:
    return _current.get()


@contextlib.contextmanager
def bind(**changes: Any) -> Iterator[AuditContext]:
    """Within the block, audit rows carry these actor and request fields."""
    context = replace(_current.get(), **changes, bound=True)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextlib.contextmanager
def _restored(context: AuditContext) -> Iterator[None]:
    """Within the block, the context is `context`, one captured earlier."""
    token = _current.set(replace(context, bound=True))
    try:
        yield
    finally:
        _current.reset(token)


def rebind(**changes: Any) -> None:
    """Change fields of the context bound by the enclosing `bind` block (the request's),
    e.g. once authentication has said who the caller is. That block's exit undoes it.
    Outside any `bind` block there is nothing to change, and no exit to undo it: a
    RuntimeError."""
    current = _current.get()
    if not current.bound:
        raise RuntimeError("audit context rebind() called outside a bind() block")
    _current.set(replace(current, **changes))


# Where `audit_log_after_response` leaves its rows on the request, for audit.middleware.
_PENDING_ATTR = "_audit_rows_after_response"


def audit_log_after_response(request: HttpRequest, **fields: Any) -> None:
    """Note an audit row (the fields of `audit.services.audit_log_build`) to insert once
    the response is sent (audit.middleware), with the actor and request context bound now:
    it survives the request's own transaction being rolled back, and adds nothing to the
    time the response takes."""
    pending: list[tuple[AuditContext, dict[str, Any]]] = request.__dict__.setdefault(
        _PENDING_ATTR, []
    )
    pending.append((current_context(), fields))


def audit_log_pending(request: HttpRequest) -> list[tuple[AuditContext, dict[str, Any]]]:
    """The rows noted by `audit_log_after_response` on this request, oldest first."""
    return list(request.__dict__.get(_PENDING_ATTR, []))


def audit_log_write_pending(pending: list[tuple[AuditContext, dict[str, Any]]]) -> None:
    """Insert rows noted by `audit_log_after_response`, each in its own statement, in
    autocommit (the request's transactions are over). A failed insert is logged, not
    raised: the response is already sent, and the other rows are still written."""
    # Imported here: audit.models imports this module.
    from audit.services import audit_log_record

    for noted, fields in pending:
        try:
            with _restored(noted):
                audit_log_record(**fields)
        except Exception:
            logger.exception(
                "audit row %s of request %s not written", fields.get("action"), noted.request_id
            )
