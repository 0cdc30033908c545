"""Django's WSGI handler, with a request that survives a charset naming no text encoding,
and request bodies that are read whole or refused, never lost or half-read."""

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.http import parse_header_parameters

from core.api.errors import error_body, error_response

# Query strings are ASCII (percent-encoded); a charset that does not read ASCII as ASCII
# is no charset a client of this API means.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def _reads_ascii(name: str) -> bool:
    try:
        return _PRINTABLE_ASCII.decode(name) == _PRINTABLE_ASCII.decode("ascii")
    except (LookupError, UnicodeError, ValueError):  # unknown, no text encoding, or broken
        return False


class Request(WSGIRequest):
    """Django's request, except that a `charset` that is no ASCII-compatible text encoding
    (`rot13`, `base64`, `utf-16`, `undefined`) is ignored like an unknown one, and that the
    query string is decoded when first read, not while the request is built. Django took
    such a charset and decoded the query string at once, failing (also on more than 1,000
    query fields) before any middleware or error handler ran: the client got no answer."""

    def _set_content_type_params(self, meta: dict[str, Any]) -> None:
        try:
            self.content_type, self.content_params = parse_header_parameters(
                meta.get("CONTENT_TYPE", "")
            )
        except ValueError:  # e.g. `charset*=x'y'z`, an RFC 2231 value in no known encoding
            self.content_type, self.content_params = "", {}
        charset = self.content_params.get("charset")
        if charset is not None and _reads_ascii(charset):
            self._encoding = charset  # not the `encoding` setter, which reads GET at once


@dataclass(frozen=True)
class BodyRefused:
    """Why a request's body was not read: the answer BodyFramingMiddleware gives."""

    status: int
    code: str
    message: str


# Where the handler leaves a BodyRefused for the middleware (the environ becomes META).
BODY_REFUSED_META = "moneta.body_refused"

_CHUNKED = BodyRefused(
    411,
    "length_required",
    "Send the request body with a Content-Length header; chunked bodies are not accepted.",
)
_BAD_LENGTH = BodyRefused(
    400, "content_length_invalid", "Content-Length must be one whole number of bytes."
)
_SHORT = BodyRefused(
    400, "body_incomplete", "The request body ended before its Content-Length was reached."
)
_TIMEOUT = BodyRefused(
    408, "request_timeout", "The rest of the request body did not arrive in time."
)


def _body_limit(environ: dict[str, Any]) -> int:
    """The largest body read here: the API's own limit under /api/, the providers' webhooks'
    under /webhooks/, Django's elsewhere (the admin's forms). A larger declared body is
    left unread for the API's 413 (or the webhook view's), or Django's."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/api/"):
        return int(settings.API_MAX_BODY_BYTES)
    if path.startswith("/webhooks/"):
        return int(settings.PROVIDER_WEBHOOK_MAX_BODY_BYTES)
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or settings.API_MAX_BODY_BYTES)


def frame_body(environ: dict[str, Any]) -> BodyRefused | None:
    """Read the body whole into wsgi.input, or say why not.

    Django reads CONTENT_LENGTH bytes and nothing else, so whatever the server passes on
    is taken as it is: uWSGI hands a chunked body over as no body at all (the request went
    on with an empty one) and two Content-Length headers as one value `5, 11` (read as
    none), and a body that ends early raised OSError in the middle of a view (a 500). Here
    a Transfer-Encoding is refused (411: HTTP/1.1 clients send JSON with a length), a
    length that is not one number is a 400, and a body that ends before its length a 400
    (408 when uWSGI's socket timeout passed first), before any view runs."""
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return _CHUNKED
    declared = environ.get("CONTENT_LENGTH") or "0"
    if not (declared.isascii() and declared.isdigit()):
        return _BAD_LENGTH
    length = int(declared)
    if length == 0 or length > _body_limit(environ):
        return None
    stream, parts, missing = environ["wsgi.input"], [], length
    try:
        while missing and (part := stream.read(missing)):
            parts.append(part)
            missing -= len(part)
    except OSError as error:  # uWSGI: "timeout during read", "error during read" (closed)
        return _TIMEOUT if "timeout" in str(error) else _SHORT
    if missing:
        return _SHORT
    environ["wsgi.input"] = io.BytesIO(b"".join(parts))
    return None


class Handler(WSGIHandler):
    request_class = Request

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> HttpResponseBase:
        refused = frame_body(environ)
        if refused is not None:
            # No body for Django to read; the middleware answers with the reason.
            environ.update({BODY_REFUSED_META: refused, "CONTENT_LENGTH": "0"})
            environ["wsgi.input"] = io.BytesIO()
        return super().__call__(environ, start_response)


class BodyFramingMiddleware:
    """Answers a request whose body the handler refused (frame_body) in the API's error
    format, with the request id and an access log line, before any view runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        refused: BodyRefused | None = request.META.get(BODY_REFUSED_META)
        if refused is None:
            return self.get_response(request)
        return error_response(
            error_body("invalid_request_error", refused.code, refused.message), refused.status
        )
