"""Cursor pagination with opaque, tamper-evident cursors.

DRF's cursors are base64 of `p=<id>`: they show the internal sequential id (so how many
rows every merchant has created) and any forged one is taken. Ours carry the same position
encrypted and signed, bound to the list (its path) and the merchant it was given to:
`core.sealing` seals it; one we did not give out for this list answers 404 naming
`cursor`, as the schema says.
"""

import struct
from typing import Any

from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from core import sealing
from core.api.errors import ApiError
from core.api.principal import Principal

# flags (bit 0: reverse, bit 1: has a position), offset, position (an id).
_CURSOR_LAYOUT = struct.Struct(">BHQ")
_REVERSE, _HAS_POSITION = 1, 2


def _cursor_not_ours() -> ApiError:
    return ApiError(
        status_code=404,
        type="not_found",
        code="resource_missing",
        message="This cursor was not given out by this list.",
        param="cursor",
    )


class NewestFirstPagination(CursorPagination):
    """`results`, `next`, `previous`; newest first; `page_size` up to 100."""

    ordering = "-id"  # ids grow with creation and are unique: a stable cursor
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    request: Request  # set by paginate_queryset
    base_url: str

    def _list_binding(self) -> str:
        """What a cursor is valid for: this list (its path, so also the account of an
        entries list) of this merchant."""
        principal = self.request.user
        merchant = principal.merchant.pk if isinstance(principal, Principal) else ""
        return f"moneta.cursor:{merchant}:{self.request.path}"

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        plain = sealing.unseal(encoded, purpose=self._list_binding())
        if plain is None or len(plain) != _CURSOR_LAYOUT.size:
            raise _cursor_not_ours()
        flags, offset, position = _CURSOR_LAYOUT.unpack(plain)
        return Cursor(
            offset=offset,
            reverse=bool(flags & _REVERSE),
            # A string, as DRF's own positions are (it compares them with str(row.id)).
            position=str(position) if flags & _HAS_POSITION else None,  # type: ignore[arg-type]
        )

    def encode_cursor(self, cursor: Cursor) -> str:
        flags = (_REVERSE if cursor.reverse else 0) | (
            _HAS_POSITION if cursor.position is not None else 0
        )
        position = int(cursor.position) if cursor.position is not None else 0
        plain = _CURSOR_LAYOUT.pack(flags, cursor.offset, position)
        encoded = sealing.seal(plain, purpose=self._list_binding())
        return str(replace_query_param(self.base_url, self.cursor_query_param, encoded))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Results per page, {self.page_size} by default; larger values than "
                    f"{self.max_page_size} give {self.max_page_size}."
                )
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                }
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    "Opaque: as found in a page's `next` or `previous` URL, valid only for "
                    "the list that gave it out (404 `resource_missing` otherwise)."
                )
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The next (older) page, or null."},
                "previous": {**link, "description": "The previous (newer) page, or null."},
                "results": schema,
            },
        }
