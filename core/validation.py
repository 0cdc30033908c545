"""The one rule for free text and metadata given to a service (SPEC §4.1), so that nothing
reaches the database that it would refuse with an error of its own."""

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


def _text_problem(value: Any, max_length: int) -> str | None:
    """What keeps `value` out of a text column of `max_length` characters, or None."""
    if not isinstance(value, str):
        return "must be a string"
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    return None


def validate_text(value: Any, *, param: str, max_length: int, required: bool = False) -> str:
    """`value` unchanged if it is a string PostgreSQL can store in a column of `max_length`
    characters: no NUL character, encodable as UTF-8 (no lone surrogates), not too long,
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
            raise ValidationError(f"{param} value of {key!r} {problem}", param=param)
    return dict(value)
