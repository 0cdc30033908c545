from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request


class NewestFirstPagination(CursorPagination):
    """`results`, `next`, `previous`; newest first; `page_size` up to 100."""

    ordering = "-id"  # ids grow with creation and are unique: a stable cursor
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF's decoding, plus: the position must be an id (an integer). Anything else
        would reach the ORM as `id < 'abc'`, a ValueError (a 500), not a bad cursor."""
        cursor: Any = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                int(cursor.position)
            except ValueError:
                raise NotFound(self.invalid_cursor_message) from None
        return cursor

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
                parameter["description"] = "Opaque: as found in a page's `next` or `previous` URL."
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
