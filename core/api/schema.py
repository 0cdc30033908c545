"""The OpenAPI schema (drf-spectacular): one `Error` component, the error responses every
operation can give derived from what the operation is, strict request bodies, and the
constant `object` field of every resource. Views only declare what is particular to them
(their input, their success response, a 402)."""

from http import HTTPStatus
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS

from core.api.fields import CurrencyField, MerchantObjectField, MetadataField, StrictSerializer
from core.validation import METADATA_KEY_MAX_LENGTH, METADATA_MAX_KEYS, METADATA_VALUE_MAX_LENGTH

ERROR_TYPES = [
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found",
    "idempotency_error",
    "payment_error",
    "rate_limit_error",
    "api_error",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"


class ErrorDetail(serializers.Serializer):
    type = serializers.ChoiceField(choices=ERROR_TYPES)
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. `insufficient_funds`.")
    message = serializers.CharField(help_text="For people; may change.")
    param = serializers.CharField(
        allow_null=True, help_text="The request parameter at fault, e.g. `amount`, or null."
    )
    transfer = serializers.CharField(
        required=False, help_text="On a declined transfer (402): the id of the failed transfer."
    )


class Error(serializers.Serializer):
    """Every error the API returns. A 402 also names the failed object under its type,
    e.g. `"transfer": "tr_…"`, when one was recorded."""

    error = ErrorDetail()


def declined_response(description: str) -> OpenApiResponse:
    """The 402 of an operation whose valid request the state of the money can refuse."""
    return OpenApiResponse(Error, description=description)


class ObjectTypeField(serializers.CharField):
    """The constant `object` of a resource, e.g. `"customer"`."""

    def __init__(self, value: str, **kwargs: Any):
        self.value = value
        kwargs.setdefault("help_text", f'Always "{value}".')
        super().__init__(**kwargs)


class ObjectTypeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = ObjectTypeField

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        field: ObjectTypeField = self.target
        return {"type": "string", "enum": [field.value], "description": field.help_text}


class CurrencyFieldExtension(OpenApiSerializerFieldExtension):
    """The currency as validation takes it: three letters, in any case."""

    target_class = CurrencyField

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z]{3}$"}  # the field's help_text added


class MetadataFieldExtension(OpenApiSerializerFieldExtension):
    """Metadata with the limits core.validation enforces (OpenAPI 3.0 cannot bound the
    length of a key: the description says it)."""

    target_class = MetadataField

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "maxProperties": METADATA_MAX_KEYS,
            "additionalProperties": {"type": "string", "maxLength": METADATA_VALUE_MAX_LENGTH},
            "description": f"Up to {METADATA_MAX_KEYS} keys of 1 to {METADATA_KEY_MAX_LENGTH} "
            f"characters, string values of at most {METADATA_VALUE_MAX_LENGTH}; no control "
            "or invisible characters in either.",
        }


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Input serializers refuse unknown fields: say so in the schema."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = False
        if not type(self.target).__dict__.get("__doc__"):  # not StrictSerializer's own
            schema["description"] = "Unknown fields are refused (400 `parameter_unknown`)."
        return schema


_ERROR_DESCRIPTIONS = {
    "400": "Malformed request: `invalid_request_error`, `param` names the field at fault.",
    "401": "Missing, invalid or revoked API key: `authentication_error`.",
    "402": "Declined: `payment_error`.",
    "403": "The API key is read-only: `permission_error`.",
    "409": "A request with this Idempotency-Key is still in flight: `idempotency_error`.",
    "413": "The request body is too large: `invalid_request_error`.",
    "415": "The request body is not JSON: `invalid_request_error`.",
    "422": "This Idempotency-Key was used with a different request: `idempotency_error`.",
    "429": "Too many requests: `rate_limit_error`; retry after `Retry-After` seconds.",
}


class MonetaAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses each operation can give, all
    with the one `Error` body."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "path" and not parameter.get("description"):
                parameter["description"] = "The object's id."
        responses = operation["responses"]
        for status, response in responses.items():
            if not response.get("description") and status < "300":
                response["description"] = HTTPStatus(int(status)).phrase
        error = self.resolve_serializer(Error, "response").ref
        for status in self._error_statuses(operation):
            response = responses.setdefault(status, {})
            if not response.get("description"):
                response["description"] = self._error_description(status, operation)
            response["content"] = {"application/json": {"schema": error}}
        idempotent = any(
            parameter.get("name") == IDEMPOTENCY_HEADER
            for parameter in operation.get("parameters", [])
        )
        for status, response in responses.items():
            headers = response.setdefault("headers", {})
            headers["X-Request-Id"] = {
                "schema": {"type": "string", "pattern": "^req_[0-9a-f]{32}$"},
                "description": "This request's id, always ours (also in our logs and audit rows).",
            }
            headers["X-Client-Request-Id"] = {
                "schema": {"type": "string", "maxLength": 200},
                "description": "The client's own `X-Request-Id`, echoed when it was 1 to 200 "
                "printable ASCII characters (kept beside ours in logs and audit rows).",
            }
            if status == "429":
                headers["Retry-After"] = {
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "Seconds to wait before retrying.",
                    "required": True,
                }
            # Only a success or a decline (402) is stored, so only they are replayed.
            if idempotent and (status.startswith("2") or status == "402"):
                headers["Idempotent-Replayed"] = {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "Present when this is the stored response to an earlier "
                    "request with the same `Idempotency-Key`.",
                }
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_description(self, status: str, operation: dict[str, Any]) -> str:
        if status != "404":
            return _ERROR_DESCRIPTIONS[status]
        names = {
            (parameter["in"], parameter["name"]) for parameter in operation.get("parameters", [])
        }
        reasons = []
        if any(location == "path" for location, _ in names):
            reasons.append("no such object for this merchant")
        if "requestBody" in operation and self._body_names_objects():
            reasons.append(
                "the body names an object this merchant does not have (`param` names it)"
            )
        if ("query", "cursor") in names:
            reasons.append("the `cursor` is not one this list gave out")
        return f"`not_found`: {'; or '.join(reasons)}."

    def _error_statuses(self, operation: dict[str, Any]) -> list[str]:
        parameters = operation.get("parameters", [])
        locations = {parameter["in"] for parameter in parameters}
        has_body = "requestBody" in operation
        authenticated = any(requirement for requirement in operation.get("security", []))
        statuses = set()
        if has_body or locations & {"query", "header"}:
            statuses.add("400")
        if authenticated:
            statuses.add("401")
            if self.method not in SAFE_METHODS:
                statuses.add("403")
        names = {parameter["name"] for parameter in parameters}
        if "path" in locations or "cursor" in names or (has_body and self._body_names_objects()):
            statuses.add("404")
        if has_body:
            statuses.update({"413", "415"})
        if any(
            parameter["in"] == "header" and parameter["name"].lower() == IDEMPOTENCY_HEADER.lower()
            for parameter in parameters
        ):
            statuses.update({"409", "422"})
        if self.view.get_throttles():
            statuses.add("429")
        if "402" in operation["responses"]:
            statuses.add("402")
        return sorted(statuses)

    def _body_names_objects(self) -> bool:
        serializer = force_instance(self.get_request_serializer())
        fields = getattr(serializer, "fields", {})
        return any(isinstance(field, MerchantObjectField) for field in fields.values())
