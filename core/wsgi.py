"""Django's WSGI handler, with a request that survives a charset naming no text encoding."""

from typing import Any

from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.utils.http import parse_header_parameters

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


class Handler(WSGIHandler):
    request_class = Request
