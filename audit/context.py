"""Who is acting, and from where: bound per request, task or command with contextvars."""

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any


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
    request_id: str = ""
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


def rebind(**changes: Any) -> None:
    """Change fields of the context bound by the enclosing `bind` block (the request's),
    e.g. once authentication has said who the caller is. That block's exit undoes it.
    Outside any `bind` block there is nothing to change, and no exit to undo it: a
    RuntimeError."""
    current = _current.get()
    if not current.bound:
        raise RuntimeError("audit context rebind() called outside a bind() block")
    _current.set(replace(current, **changes))
