"""The one rule for free text and metadata given to a service (SPEC §4.1), so that nothing
reaches the database that it would refuse with an error of its own."""

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from django.db.models import Model

from core.exceptions import ValidationError

METADATA_MAX_KEYS = 20
METADATA_KEY_MAX_LENGTH = 40
METADATA_VALUE_MAX_LENGTH = 500

# Reasons land in the audit log (a text column) and, for adjustments, in the ledger
# transaction's description (500 characters); one limit for both.
REASON_MAX_LENGTH = 500


def max_length_of(model: type[Model], field: str) -> int:
    """The width of a model's text column: the limit its service enforces on input."""
    max_length = getattr(model._meta.get_field(field), "max_length", None)
    if not isinstance(max_length, int):
        raise TypeError(f"{model.__name__}.{field} has no max_length")
    return max_length


# Unicode categories refused in text: controls (C0, DEL, C1, including tab and newline) and
# format characters, which are invisible or reorder what is shown (U+202E RIGHT-TO-LEFT
# OVERRIDE, U+200B ZERO WIDTH SPACE, U+FEFF, U+2066 isolates, soft hyphen, …), so that a name
# or description always reads as what it is in the admin, a log or a client's screen.
# Line and paragraph separators (U+2028, U+2029) break lines as a newline does.
_REFUSED_CATEGORIES = {
    "Cc": "control",
    "Cf": "invisible formatting",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}
# Except the zero-width joiner and non-joiner, which Persian, Indic scripts and emoji need.
_ALLOWED_FORMAT_CHARACTERS = {"\u200c", "\u200d"}


def _unsafe_character(value: str) -> str | None:
    """The first control or invisible formatting character of `value`, described."""
    if value.isprintable():  # the usual text, checked at C speed: no Cc or Cf in it
        return None
    for char in value:
        kind = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind is not None and char not in _ALLOWED_FORMAT_CHARACTERS:
            return f"{kind} character U+{ord(char):04X}"
    return None


def _text_problem(value: Any, max_length: int) -> str | None:
    """What keeps `value` out of a text column of `max_length` characters, or None."""
    if not isinstance(value, str):
        return "must be a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    unsafe = _unsafe_character(value)
    if unsafe is not None:  # NUL among them, which PostgreSQL refuses
        return f"must not contain control or invisible characters (found {unsafe})"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    return None


def validate_text(value: Any, *, param: str, max_length: int, required: bool = False) -> str:
    """`value` unchanged if it is a string PostgreSQL can store in a column of `max_length`
    characters: encodable as UTF-8 (no lone surrogates), without control or invisible
    formatting characters (NUL among them; see _REFUSED_CATEGORIES), not too long,
    and not blank when `required`. Anything else is a ValidationError naming `param`."""
    problem = _text_problem(value, max_length)
    if problem is not None:
        raise ValidationError(f"{param} {problem}", param=param)
    if required and not value.strip():
        raise ValidationError(f"{param} is required", param=param)
    return str(value)


def validate_metadata(value: Any, *, param: str = "metadata") -> dict[str, str]:
    """A copy of `value` (None is no metadata) if it has at most 20 string keys of 1 to 40
    characters with string values of at most 500 characters, all storable text; anything
    else is a ValidationError naming `param`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{param} must be an object of string keys and values", param=param)
    if len(value) > METADATA_MAX_KEYS:
        raise ValidationError(f"{param} has at most {METADATA_MAX_KEYS} keys", param=param)
    for key, item in value.items():
        problem = _text_problem(key, METADATA_KEY_MAX_LENGTH)
        if problem is None and not key:
            problem = "must not be empty"
        if problem is not None:
            raise ValidationError(f"{param} keys {problem}", param=param)
        problem = _text_problem(item, METADATA_VALUE_MAX_LENGTH)
        if problem is not None:
            raise ValidationError(f"{param} value of {json.dumps(key)} {problem}", param=param)
    return dict(value)
