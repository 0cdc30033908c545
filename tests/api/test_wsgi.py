"""The WSGI application the server runs (config.wsgi), called as a server calls it: bad
input in the request line or headers still gets an answer in the API's error format."""

import json
from typing import Any

import pytest

from tests.api.helpers import wsgi_call as _call


@pytest.mark.django_db
@pytest.mark.parametrize(
    "charset", ["rot13", "base64", "zlib", "hex", "undefined", "punycode", "utf-16", "nonexistent"]
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_charset_that_is_no_text_encoding_gets_an_answer(
    charset: str, method: str, api: Any
) -> None:
    status, headers, content = _call(
        REQUEST_METHOD=method,
        PATH_INFO="/api/v1/customers",
        QUERY_STRING="limit=1",
        CONTENT_TYPE=f"application/json; charset={charset}",
        HTTP_AUTHORIZATION=f"Bearer {api.secret}",
        body='{"name": "Ann"}' if method == "POST" else "",
    )
    assert status.split()[0] in ("200", "201"), (status, content)
    assert headers["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_a_charset_with_too_many_query_fields_is_a_400(api: Any) -> None:
    status, _, content = _call(
        PATH_INFO="/api/v1/customers",
        QUERY_STRING="&".join(f"x{index}=1" for index in range(1_001)),
        CONTENT_TYPE="application/json; charset=latin-1",
        HTTP_AUTHORIZATION=f"Bearer {api.secret}",
    )
    assert status.startswith("400 "), (status, content)
    assert b'"request_malformed"' in content


@pytest.mark.django_db
def test_a_usable_charset_is_still_used(api: Any) -> None:
    status, _, content = _call(
        REQUEST_METHOD="POST",
        PATH_INFO="/api/v1/customers",
        CONTENT_TYPE="application/json; charset=latin-1",
        HTTP_AUTHORIZATION=f"Bearer {api.secret}",
        body_bytes='{"name": "Zoë"}'.encode("latin-1"),
    )
    assert status.startswith("201 "), (status, content)
    assert json.loads(content)["name"] == "Zoë"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset*=x'y'z",  # RFC 2231, in no known encoding
        "application/json; charset*=bogus''%41",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_content_type_django_cannot_parse_gets_a_json_answer(
    content_type: str, method: str, api: Any
) -> None:
    status, headers, content = _call(
        REQUEST_METHOD=method,
        PATH_INFO="/api/v1/customers",
        CONTENT_TYPE=content_type,
        HTTP_AUTHORIZATION=f"Bearer {api.secret}",
        body='{"name": "Ann"}' if method == "POST" else "",
    )
    # No media type left: a GET is served, a body is refused as not JSON.
    expected = "200" if method == "GET" else "415"
    assert status.split()[0] == expected, (status, content)
    assert headers["Content-Type"] == "application/json"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        'application/json; charset="a\x00b"',
        "application/json; charset*=utf-8''a%00b",  # the same, RFC 2231-encoded
    ],
)
def test_a_charset_with_a_nul_is_ignored(content_type: str, api: Any) -> None:
    status, _, content = _call(
        REQUEST_METHOD="POST",
        PATH_INFO="/api/v1/customers",
        QUERY_STRING="x=1",
        CONTENT_TYPE=content_type,
        HTTP_AUTHORIZATION=f"Bearer {api.secret}",
        body='{"name": "Ann"}',
    )
    assert status.startswith("201 "), (status, content)
