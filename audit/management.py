"""Management commands act as the command: its name (or `--actor`) is on their audit rows."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import context
from audit.context import ActorType
from core.exceptions import DomainError


class AuditedCommand(BaseCommand):
    """A command whose writes are audited with `command:<name>` (or the operator given by
    `--actor`) as actor, and whose domain errors end as a clean `CommandError`."""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--actor", default="", help="who runs this (e.g. an email), for the audit trail"
        )

    def execute(self, *args: Any, **options: Any) -> str | None:
        name = self.__module__.rsplit(".", 1)[-1]
        actor = options.get("actor") or f"command:{name}"
        with context.bind(actor_type=ActorType.COMMAND, actor=actor, request_id=f"cmd:{name}"):
            try:
                return super().execute(*args, **options)
            except DomainError as error:
                raise CommandError(f"{error.code}: {error.message}") from error
