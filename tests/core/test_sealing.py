"""core.sealing: tokens the client holds but can neither read nor forge."""

import pytest
from django.conf import settings
from django.test import override_settings

from core.sealing import MAX_PLAIN_BYTES, seal, unseal


def test_a_sealed_token_opens_for_its_purpose_only() -> None:
    token = seal(b"position 42", purpose="list:a")

    assert unseal(token, purpose="list:a") == b"position 42"
    assert unseal(token, purpose="list:b") is None
    assert b"position" not in token.encode()


def test_a_token_sealed_under_another_secret_key_does_not_open() -> None:
    token = seal(b"x", purpose="p")

    with override_settings(SECRET_KEY=settings.SECRET_KEY + "-rotated"):
        assert unseal(token, purpose="p") is None


@pytest.mark.parametrize("token", ["", "=", "é", "!!!", "A" * 10_000, "AAAA"])
def test_anything_else_is_none(token: str) -> None:
    assert unseal(token, purpose="p") is None


def test_more_than_a_cursor_is_refused_when_sealing() -> None:
    with pytest.raises(ValueError, match="at most"):
        seal(b"x" * (MAX_PLAIN_BYTES + 1), purpose="p")


def test_a_token_with_one_character_changed_does_not_open() -> None:
    token = seal(b"position 42", purpose="p")
    changed = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]

    assert unseal(changed, purpose="p") is None
