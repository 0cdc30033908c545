"""What OPTIONS answers on the API."""

from typing import Any

from django.urls import reverse
from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request


class SchemaPointerMetadata(SimpleMetadata):
    """The route's name, its media types and where the schema is, but no field list.
    DRF's would describe the view's output serializer, listing read-only fields (`id`,
    `status`, `ledger_transaction`, …) as writable; what a request accepts is stated once,
    in the OpenAPI schema."""

    def determine_metadata(self, request: Request, view: Any) -> dict[str, Any]:
        return {
            "name": view.get_view_name(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
            "schema": request.build_absolute_uri(reverse("schema")),
        }
