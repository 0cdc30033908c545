"""Celery tasks act as the worker: the task's name is the actor of their audit rows."""

from contextvars import Token
from dataclasses import replace
from typing import Any

from celery.signals import task_postrun, task_prerun

from audit.context import ActorType, AuditContext, _current, current_context

_tokens: dict[str, Token[AuditContext]] = {}


@task_prerun.connect
def _bind_worker_actor(task_id: str, task: Any, **_: Any) -> None:
    context = current_context()
    if context.bound:
        return  # an eager task run inside a request, command or task keeps its caller's context
    _tokens[task_id] = _current.set(
        replace(
            context, actor_type=ActorType.WORKER, actor=task.name, request_id=task_id, bound=True
        )
    )


@task_postrun.connect
def _unbind_worker_actor(task_id: str, **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        _current.reset(token)
