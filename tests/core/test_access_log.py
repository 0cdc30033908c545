"""The access log the app writes (core.logging.AccessLogMiddleware): one record per request on
`moneta.access`, with the request id the response carries."""

import json
import logging

import pytest
from django.conf import settings
from django.test import Client, override_settings

from accounts.api_keys import api_key_create
from audit.logging import RequestContextFilter
from core.logging import JsonFormatter
from tests.factories import MerchantFactory

WITH_ACCESS_LOG = [
    settings.MIDDLEWARE[0],
    "core.logging.AccessLogMiddleware",
    *[name for name in settings.MIDDLEWARE[1:] if name != "core.logging.AccessLogMiddleware"],
]


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "moneta.access"]


@override_settings(MIDDLEWARE=WITH_ACCESS_LOG)
def test_each_request_has_one_access_line_with_its_request_ids(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="moneta.access"):
        response = client.get(
            "/health/live?probe=1", HTTP_USER_AGENT="probe/1.0", HTTP_X_REQUEST_ID="req_log_1"
        )

    [record] = _access_records(caplog)
    assert record.getMessage() == "GET /health/live 200"
    assert RequestContextFilter().filter(record)
    line = json.loads(JsonFormatter("%(levelname)s %(name)s %(message)s").format(record))
    assert response["X-Client-Request-Id"] == "req_log_1"
    assert line["request_id"] == response["X-Request-Id"] != "req_log_1"  # ours
    assert line["client_request_id"] == "req_log_1"
    assert line["method"] == "GET"
    assert line["path"] == "/health/live"
    assert line["query"] == "probe=1"
    assert line["status"] == 200
    assert line["response_bytes"] == len(response.content)
    assert line["user_agent"] == "probe/1.0"
    assert line["remote_addr"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float)
    assert "request" not in line  # the HttpRequest object is not rendered


@pytest.mark.django_db
@override_settings(MIDDLEWARE=WITH_ACCESS_LOG)
def test_a_refused_api_request_is_logged_with_its_status(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="moneta.access"):
        response = client.get("/api/v1/customers", HTTP_AUTHORIZATION="Bearer mk_live_nope")

    [record] = _access_records(caplog)
    assert record.getMessage() == "GET /api/v1/customers 401"
    assert response.status_code == 401


def test_without_the_setting_nothing_is_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert "core.logging.AccessLogMiddleware" not in settings.MIDDLEWARE  # the tests run DEBUG
    with caplog.at_level(logging.INFO, logger="moneta.access"):
        client.get("/health/live")
    assert _access_records(caplog) == []


@pytest.mark.django_db
@override_settings(MIDDLEWARE=WITH_ACCESS_LOG)
def test_an_api_request_names_its_key_and_merchant_in_the_access_line(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    merchant = MerchantFactory.create()
    api_key, secret = api_key_create(merchant=merchant)

    with caplog.at_level(logging.INFO, logger="moneta.access"):
        client.get("/api/v1/customers", HTTP_AUTHORIZATION=f"Bearer {secret}")

    [record] = _access_records(caplog)
    line = json.loads(JsonFormatter("%(message)s").format(record))
    assert (line["api_key"], line["merchant"]) == (api_key.public_id, merchant.public_id)
    assert api_key.public_id.startswith("key_")
