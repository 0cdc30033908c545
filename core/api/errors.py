"""One error shape for the whole API (SPEC §4.1):
`{"error": {"type", "code", "message", "param"}}`, from this one handler."""

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponseBase, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.api.parsers import RequestTooLarge
from core.exceptions import Declined, DomainError, NotFound

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error that already knows its place in the API's error format."""

    def __init__(
        self,
        *,
        status_code: int,
        type: str,
        code: str,
        message: str,
        param: str | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.body = {"type": type, "code": code, "message": message, "param": param, **extra}


def error_body(type: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type, "code": code, "message": message, "param": param}}


def _first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str, str]:
    """(param, code, message) of the first problem in a DRF validation error's detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = path if key == "non_field_errors" else (f"{path}[{key}]" if path else str(key))
            return _first_validation_error(value, name)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], path)
    code = getattr(detail, "code", None) or "invalid"
    return (
        path or None,
        f"parameter_{code}" if code in {"required", "invalid"} else code,
        str(detail),
    )


def _from_domain(error: DomainError) -> Response:
    status_code: int
    if isinstance(error, Declined):
        status_code, type = status.HTTP_402_PAYMENT_REQUIRED, "payment_error"
    elif isinstance(error, NotFound) or error.code == "resource_missing":
        status_code, type = status.HTTP_404_NOT_FOUND, "not_found"
    else:  # a malformed request, or an object not in a state that allows it
        status_code, type = status.HTTP_400_BAD_REQUEST, "invalid_request_error"
    return Response(error_body(type, error.code, error.message, error.param), status=status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's hook: every exception raised in an API view ends here, none as a traceback."""
    if isinstance(exc, ApiError):
        return Response({"error": exc.body}, status=exc.status_code)
    if isinstance(exc, DomainError):
        return _from_domain(exc)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return Response(error_body("not_found", "resource_missing", "No such object."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        # DRF 3.18 reads JSON bodies through `request.body`, where Django refuses one past
        # DATA_UPLOAD_MAX_MEMORY_SIZE before LimitedJSONParser sees it: that too is a 413.
        exc = RequestTooLarge()
    if isinstance(exc, SuspiciousOperation):
        # Django refusing the request itself: more than DATA_UPLOAD_MAX_NUMBER_FIELDS query
        # or form parameters, say.
        return Response(
            error_body("invalid_request_error", "request_malformed", "The request is malformed."),
            status=400,
        )
    if isinstance(exc, exceptions.ValidationError):
        param, code, message = _first_validation_error(exc.detail)
        return Response(error_body("invalid_request_error", code, message, param), status=400)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Response(
            error_body("authentication_error", "invalid_api_key", str(exc.detail)),
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if isinstance(exc, exceptions.PermissionDenied):
        return Response(error_body("permission_error", "forbidden", str(exc.detail)), status=403)
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, int(getattr(exc, "wait", None) or 1))
        return Response(
            error_body(
                "rate_limit_error", "rate_limited", f"Too many requests; retry in {wait} s."
            ),
            status=429,
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, exceptions.APIException):
        # Malformed JSON, unsupported media type, method not allowed, body too large, ….
        codes = exc.get_codes()
        return Response(
            error_body(
                "invalid_request_error",
                codes if isinstance(codes, str) else "invalid_request",
                str(exc.detail),
            ),
            status=exc.status_code,
        )
    request = context.get("request")
    logger.exception("unhandled error in %s", getattr(request, "path", "an API view"))
    return Response(
        error_body("api_error", "internal_error", "Something went wrong on our side."),
        status=500,
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def error_response(body: dict[str, Any], status: int) -> JsonResponse:
    """An error body outside DRF, byte for byte as DRF's JSONRenderer writes the others
    (compact, UTF-8)."""
    return JsonResponse(
        body, status=status, json_dumps_params={"separators": (",", ":"), "ensure_ascii": False}
    )


def not_found_view(request: HttpRequest, exception: Exception) -> JsonResponse:
    """handler404: JSON under /api/, Django's page elsewhere."""
    if not _is_api(request):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)  # type: ignore[return-value]
    return error_response(error_body("not_found", "resource_missing", "No such route."), 404)


def server_error_view(request: HttpRequest) -> JsonResponse:
    """handler500: JSON under /api/, never a traceback."""
    if not _is_api(request):
        from django.views.defaults import server_error

        return server_error(request)  # type: ignore[return-value]
    return error_response(
        error_body("api_error", "internal_error", "Something went wrong on our side."), 500
    )


class DebugApiNotFoundMiddleware:
    """With DEBUG on (the demo), Django answers a path that no route takes (a malformed
    id, say) with its HTML debug page instead of calling handler404; under /api/ this
    answers with the JSON 404 that production gives. Installed only when DEBUG is on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and _is_api(request)
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return not_found_view(request, Http404())
        return response
