"""The API's JSON parser. It enforces the request body limit itself (DRF's parsers read the
stream directly, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE), refuses an object that names
a key twice (Python's json takes the last one: `{"amount": 1, "amount": 100000000}` would
move 100,000,000), and words every refusal itself: DRF's messages quote Python's (the codec
error of bad UTF-8, the `sys.set_int_max_str_digits` hint of a 5,000-digit number)."""

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise exceptions.ParseError(f"{name} is not a JSON number.")


class LimitedJSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        context = parser_context or {}
        request = context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge()
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge()
        encoding = context.get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = body.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise exceptions.ParseError(
                f"The request body is not valid text in its charset ({encoding})."
            ) from None
        try:
            return json.loads(
                text,
                object_pairs_hook=_object_without_duplicate_keys,
                parse_constant=_refuse_constant,
            )
        except _DuplicateKey as error:
            raise exceptions.ParseError(
                f"The JSON body names the key {json.dumps(error.key[:40])} more than once."
            ) from None
        except json.JSONDecodeError as error:
            # Where, not Python's wording of what (which can name Python codecs).
            raise exceptions.ParseError(
                f"The request body is not valid JSON (at line {error.lineno}, column "
                f"{error.colno})."
            ) from None
        except ValueError:  # a number too long for Python to convert (over 4,300 digits)
            raise exceptions.ParseError("A number in the JSON body has too many digits.") from None
        except RecursionError:
            raise exceptions.ParseError("JSON nested too deeply.") from None
