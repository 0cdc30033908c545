"""The one rule for free text and metadata (core.validation); each service's tests check
that it applies it."""

from typing import Any

import pytest

from accounts.models import Customer
from core.exceptions import ValidationError
from core.validation import max_length_of, validate_metadata, validate_text
from tests.bad_inputs import BAD_METADATA, bad_text


@pytest.mark.parametrize("value", ["", "  spaced  ", "Zoë 🙂", "x" * 10])
def test_storable_text_is_returned_as_given(value: str) -> None:
    assert validate_text(value, param="name", max_length=10) == value


@pytest.mark.parametrize("value", bad_text(10))
def test_unstorable_text_is_refused_naming_the_param(value: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_text(value, param="name", max_length=10)

    assert refused.value.param == "name"


@pytest.mark.parametrize("value", ["", "   ", "\u3000"])  # the last an ideographic space
def test_required_text_must_not_be_blank(value: str) -> None:
    with pytest.raises(ValidationError, match=r"^reason is required$") as refused:
        validate_text(value, param="reason", max_length=10, required=True)

    assert refused.value.param == "reason"


def test_metadata_at_its_limits_is_accepted() -> None:
    metadata = {f"{i:02d}" + "k" * 38: "v" * 500 for i in range(20)}

    assert validate_metadata(metadata) == metadata
    assert validate_metadata({"empty": ""}) == {"empty": ""}


def test_no_metadata_is_an_empty_dict() -> None:
    assert validate_metadata(None) == {}


@pytest.mark.parametrize("value", BAD_METADATA)
def test_malformed_metadata_is_refused_naming_the_param(value: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_metadata(value, param="tags")

    assert refused.value.param == "tags"


def test_max_length_of_reads_the_models_column_width() -> None:
    assert max_length_of(Customer, "email") == 254
    with pytest.raises(TypeError):
        max_length_of(Customer, "metadata")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"])
def test_line_and_paragraph_separators_are_refused_like_a_newline(separator: str) -> None:
    with pytest.raises(ValidationError, match=f"U\\+{ord(separator):04X}"):
        validate_text(f"Ada{separator}Lovelace", param="name", max_length=100)
