"""Content negotiation: the API answers JSON whatever the client's `Accept` says, as
Stripe's does (docs/api.md), without parsing the header on every request."""

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JsonNegotiation(DefaultContentNegotiation):
    """A view with one renderer (every API view: JSON) answers with it; a view with several
    (the schema, JSON or YAML) negotiates as DRF does."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> Any:
        renderers = list(renderers)
        if len(renderers) == 1:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
