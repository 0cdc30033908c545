"""RELIABILITY B12: webhook URLs aimed at the platform's own network are refused when an
endpoint is registered, and again when a delivery connects (after resolving the name
again), with WEBHOOKS_ALLOW_PRIVATE_URLS off. A listener on 127.0.0.1 sees no request."""

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from accounts.services import customer_create
from core.exceptions import ValidationError
from tests.factories import MerchantFactory
from tests.webhooks.receiver import Receiver
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create

PUBLIC = "93.184.216.34"  # an address on the internet (never connected to here)


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host names the resolver answers as the test says (each lookup takes the next
    answer, the last one repeating), as a DNS server under an attacker's control would."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            queue = answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def private_urls_refused(settings: Settings) -> Iterator[None]:
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    yield


def _register(url: str) -> WebhookEndpoint:
    endpoint, _ = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url=url, enabled_events=["*"]
    )
    return endpoint


def _refused(url: str) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        _register(url)
    assert refused.value.param == "url"
    return refused.value


@pytest.mark.django_db
@pytest.mark.usefixtures("private_urls_refused")
@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:5432/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://0x7f000001/",
        "https://2130706433/",
        "https://127.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "https://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        # Not global, yet is_global to Python 3.11.7's ipaddress:
        "https://[64:ff9b:1::a00:5]/",  # local-use NAT64 (RFC 8215) of 10.0.0.5
        "https://[::7f00:1]/",  # IPv4-compatible (deprecated) ::127.0.0.1
        "https://[::ffff:0:7f00:1]/",  # IPv4-translated (RFC 2765) 127.0.0.1
        "https://[fec0::1]/",  # site-local (deprecated)
        "https://[fe80::1]/",
        "https://[fc00::1]/",
        "https://10.0.0.5/",
        "https://172.16.3.4/",
        "https://192.168.1.1/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://240.0.0.1/",
        "https://localhost/",
    ],
)
def test_private_addresses_are_refused_at_registration(url: str) -> None:
    assert _refused(url).code == "url_not_public"
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("private_urls_refused")
def test_a_name_that_resolves_to_a_private_address_is_refused(
    names: dict[str, list[str]],
) -> None:
    names["intranet.example"] = ["10.1.2.3"]
    names["mixed.example"] = [PUBLIC, "192.168.0.7"]  # any private answer is enough
    assert _refused("https://intranet.example/hooks").code == "url_not_public"
    names["mixed.example"] = ["192.168.0.7"]
    assert _refused("https://mixed.example/hooks").code == "url_not_public"


@pytest.mark.django_db
@pytest.mark.usefixtures("private_urls_refused")
@pytest.mark.parametrize(
    ("url", "code"),
    [
        (f"http://{PUBLIC}/", "url_scheme"),
        (f"ftp://{PUBLIC}/", "url_scheme"),
        (f"https://user:secret@{PUBLIC}/", "url_credentials"),
        (f"https://user@{PUBLIC}/", "url_credentials"),
        ("https://no-such-host.invalid/", "url_unresolvable"),
        ("https:///path-only", "invalid_request"),
        (f"https://{PUBLIC}:99999/", "invalid_request"),
        ("https://0177.0.0.1/", "invalid_request"),  # octal: no valid URL to httpx either
    ],
)
def test_malformed_urls_are_refused(url: str, code: str) -> None:
    assert _refused(url).code == code


@pytest.mark.django_db
@pytest.mark.usefixtures("private_urls_refused")
def test_a_public_https_url_is_accepted() -> None:
    assert _register(f"https://{PUBLIC}/hooks").url == f"https://{PUBLIC}/hooks"


def _deliver_one(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """An event for the endpoint's merchant, relayed and attempted in-process (eager)."""
    customer_create(merchant=endpoint.merchant, name="Ada")
    return WebhookDelivery.objects.get(endpoint=endpoint)


@pytest.mark.django_db(transaction=True)
def test_a_name_rebound_to_loopback_after_registration_gets_no_request(
    settings: Settings, names: dict[str, list[str]], receiver: Receiver
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    names["rebind.example"] = [PUBLIC, "127.0.0.1"]  # public when checked, then loopback
    endpoint = _register(f"https://rebind.example:{receiver.port}/hooks")

    delivery = _deliver_one(endpoint)

    assert receiver.requests() == []
    [attempt] = delivery.attempt_log.all()
    assert attempt.error == (
        "address refused: rebind.example resolves to 127.0.0.1, which is not a public address"
    )
    assert not attempt.succeeded


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "0x7f000001", "2130706433", "127.1", "[::ffff:127.0.0.1]", "localhost"],
)
def test_an_endpoint_registered_while_allowed_gets_no_request_once_refused(
    settings: Settings, receiver: Receiver, host: str
) -> None:
    endpoint = _register(f"https://{host}:{receiver.port}/hooks")  # allowed: the demo's setting
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False

    delivery = _deliver_one(endpoint)

    assert receiver.requests() == []
    [attempt] = delivery.attempt_log.all()
    assert attempt.error.startswith("address refused:")


@pytest.mark.django_db(transaction=True)
def test_plain_http_is_refused_at_delivery_once_refused(
    settings: Settings, receiver: Receiver
) -> None:
    endpoint = _register(receiver.url)
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False

    delivery = _deliver_one(endpoint)

    assert receiver.requests() == []
    assert delivery.attempt_log.get().error == "address refused: http URLs are not allowed"
