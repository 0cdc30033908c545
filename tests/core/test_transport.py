"""HTTPS (SPEC §4.5): `check --deploy` is clean with it and finds what is missing without
it; with it, plain HTTP is redirected (but for the probes) and HTTPS answers carry HSTS and
secure cookies. TRUST_X_FORWARDED_PROTO is the only way the proxy's header counts."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from accounts.api_keys import api_key_create
from tests.api.helpers import ApiClient
from tests.factories import CustomerFactory

MANAGE = Path(settings.BASE_DIR) / "manage.py"


def _manage(*arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    """manage.py with production settings plus `env`, on the demo's SQLite (no query)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "HTTPS", "TRUST_X_FORWARDED_PROTO", "DEBUG")
    }
    environment.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="moneta.example",
        **env,
    )
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(MANAGE), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_deployment_check_is_clean_with_https() -> None:
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", HTTPS="true", TRUST_X_FORWARDED_PROTO="true"
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_without_https_the_deployment_check_names_what_is_missing() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W010", "security.W016"):
        assert check in result.stderr


def test_https_without_the_proxy_header_is_refused_at_start() -> None:
    result = _manage("check", HTTPS="true")

    assert result.returncode != 0
    assert "HTTPS=true needs TRUST_X_FORWARDED_PROTO=true" in result.stderr


HTTPS_BEHAVIOUR = """
from django.test import Client
client = Client(HTTP_HOST="moneta.example")
plain = client.get("/api/v1/schema/")
secure = client.get("/api/v1/schema/", HTTP_X_FORWARDED_PROTO="https")
probe = client.get("/health/live")
login = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
print(plain.status_code, plain["Location"])
print(secure.status_code, secure["Strict-Transport-Security"])
print(probe.status_code)
print(login.cookies["csrftoken"]["secure"])
"""


def test_with_https_plain_http_is_redirected_and_https_is_strict() -> None:
    result = _manage(
        "shell",
        "--verbosity",
        "0",
        "-c",
        HTTPS_BEHAVIOUR,
        HTTPS="true",
        TRUST_X_FORWARDED_PROTO="true",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "301 https://moneta.example/api/v1/schema/",
        "200 max-age=31536000; includeSubDomains; preload",
        "200",  # load balancers probe over plain HTTP
        "True",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("proxy_ssl_header", "scheme"),
    [(None, "http"), (("HTTP_X_FORWARDED_PROTO", "https"), "https")],
)
def test_only_a_trusted_proxy_header_makes_links_https(
    proxy_ssl_header: tuple[str, str] | None, scheme: str
) -> None:
    key, secret = api_key_create(merchant=CustomerFactory.create().merchant)
    CustomerFactory.create(merchant=key.merchant)
    with override_settings(SECURE_PROXY_SSL_HEADER=proxy_ssl_header):
        page = ApiClient(secret, api_key=key).get(
            "customers", {"page_size": 1}, HTTP_X_FORWARDED_PROTO="https"
        )

    assert page.status_code == 200
    assert page.json()["next"].startswith(f"{scheme}://testserver")
    assert page["Cache-Control"] == "no-store"
