"""Inputs every service must refuse with a ValidationError before they reach the database
(which would answer with a DataError, or Python with a TypeError)."""

from typing import Any

import pytest


def bad_text(max_length: int) -> list[Any]:
    """Values a text parameter of `max_length` characters refuses."""
    return [
        pytest.param(5, id="not-a-string"),
        pytest.param(None, id="none"),
        pytest.param(b"bytes", id="bytes"),
        pytest.param("nul\x00inside", id="nul"),
        pytest.param("lone \ud800 surrogate", id="lone-surrogate"),
        pytest.param("x" * (max_length + 1), id="one-too-long"),
    ]


BAD_METADATA = [
    pytest.param("tier=gold", id="not-a-mapping"),
    pytest.param(["tier"], id="a-list"),
    pytest.param({"tier": 5}, id="int-value"),
    pytest.param({"tier": None}, id="none-value"),
    pytest.param({"tier": {"nested": "x"}}, id="nested-value"),
    pytest.param({5: "gold"}, id="int-key"),
    pytest.param({"": "gold"}, id="empty-key"),
    pytest.param({"k" * 41: "gold"}, id="key-too-long"),
    pytest.param({"tier": "v" * 501}, id="value-too-long"),
    pytest.param({"tier": "go\x00ld"}, id="nul-in-value"),
    pytest.param({"ti\x00er": "gold"}, id="nul-in-key"),
    pytest.param({"tier": "\udfff"}, id="lone-surrogate-value"),
    pytest.param({f"key{i}": "v" for i in range(21)}, id="21-keys"),
]
