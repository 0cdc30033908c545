"""Who calls the API, as the shared plumbing of core.api sees it.

core is the ground and imports no app: it knows neither API keys nor merchants. The
authentication configured in settings (`accounts.api.authentication.ApiKeyAuthentication`)
makes a Principal of each caller; core.api scopes every query to its `merchant`, and asks
it to answer for the refusals the audit trail must show.
"""

import abc
from typing import Any

from django.http import HttpRequest


class Principal(abc.ABC):
    """`request.user` for API requests."""

    is_authenticated = True
    is_anonymous = False

    @property
    @abc.abstractmethod
    def merchant(self) -> Any:
        """The merchant every query of the request is scoped to (a model instance)."""

    @property
    @abc.abstractmethod
    def read_only(self) -> bool:
        """Whether the caller may only read."""

    @abc.abstractmethod
    def write_refused(self, *, method: str, path: str) -> None:
        """Record that a read-only caller tried to write (RELIABILITY B10); the request
        then gets its 403."""

    @abc.abstractmethod
    def foreign_object_denied(
        self, request: HttpRequest, *, method: str, path: str, public_id: str, param: str | None
    ) -> None:
        """Record that the caller named another merchant's object (RELIABILITY B8), after
        the response (the request's own transaction may roll back); it gets a 404."""
