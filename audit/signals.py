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
    if context.actor_type != ActorType.SYSTEM:
        return  # an eager task run inside a request or command keeps its caller as actor
    _tokens[task_id] = _current.set(
        replace(context, actor_type=ActorType.WORKER, actor=task.name, request_id=task_id)
    )


@task_postrun.connect
def _unbind_worker_actor(task_id: str, **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        _current.reset(token)
