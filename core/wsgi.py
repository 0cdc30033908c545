"""Django's WSGI handler, with a request that survives a charset naming no text encoding."""

from typing import Any

from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.utils.http import parse_header_parameters


def _is_text_encoding(name: str) -> bool:
    try:
        b"a".decode(name)  # not b"": decoding nothing skips the codec's checks
    except LookupError:  # unknown, or a bytes-to-bytes or text-to-text codec (rot13, base64)
        return False
    except UnicodeError:  # a text encoding this one byte is not valid in (UTF-16)
        return True
    return True


class Request(WSGIRequest):
    """Django's request, except that `Content-Type: …; charset=rot13` (a codec, but not a
    text encoding) is ignored like an unknown charset. Django would take it and fail to
    decode the query string while building the request, before any middleware or error
    handler runs: the client got no response at all."""

    def _set_content_type_params(self, meta: dict[str, Any]) -> None:
        self.content_type, self.content_params = parse_header_parameters(
            meta.get("CONTENT_TYPE", "")
        )
        charset = self.content_params.get("charset")
        if charset is not None and _is_text_encoding(charset):
            self.encoding = charset


class Handler(WSGIHandler):
    request_class = Request
