"""Where a webhook may go (RELIABILITY B12): https URLs of hosts whose every address is
public, checked when an endpoint is registered and again on every connection a delivery
opens, against the address it connects to (resolved once: no DNS rebinding between the
check and the connection). WEBHOOKS_ALLOW_PRIVATE_URLS (tests, the demo) lifts both.

Addresses are judged by what the resolver returns, so every spelling of one (`127.1`,
`0x7f000001`, `2130706433`, `[::ffff:127.0.0.1]`) is judged as the address it is."""

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from core.exceptions import ValidationError
from core.validation import validate_text

URL_MAX_LENGTH = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# The well-known NAT64 prefix: the last 32 bits are an IPv4 address (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not global, though ipaddress (Python 3.11.7) says they are: local-use NAT64 (RFC 8215,
# to a network's own IPv4 space), IPv4-compatible and IPv4-translated (RFC 2765)
# addresses, site-local (deprecated, may still be routed inside a site).
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(network)
    for network in ("64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96", "fec0::/10")
)


class AddressRefused(Exception):
    """A delivery's host resolved to an address webhooks may not reach."""


def address_public(address: IpAddress) -> bool:
    """A global unicast address, and so is any IPv4 address it carries (IPv4-mapped,
    NAT64, 6to4): not private, loopback, link-local, shared, reserved, multicast or
    unspecified."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address_public(address.ipv4_mapped)
        if any(address in network for network in _NOT_GLOBAL):
            return False
        if address in _NAT64:
            return address_public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        if address.sixtofour is not None and not address_public(address.sixtofour):
            return False
    return address.is_global and not address.is_multicast


def host_addresses(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to, in the resolver's order (a literal is itself).
    Raises socket.gaierror when it resolves to none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0])) for info in infos]


def _refusal(host: str, addresses: list[IpAddress]) -> str | None:
    """Why `host` may not be reached, or None."""
    if settings.WEBHOOKS_ALLOW_PRIVATE_URLS:
        return None
    for address in addresses:
        if not address_public(address):
            return f"{host} resolves to {address}, which is not a public address"
    return None


def _schemes() -> set[str]:
    return {"https", "http"} if settings.WEBHOOKS_ALLOW_PRIVATE_URLS else {"https"}


def scheme_refusal(url: str) -> str | None:
    """Why a delivery may not use this URL's scheme now (it was checked when registered;
    the setting may have changed since), or None."""
    scheme = urlsplit(url).scheme.lower()
    return None if scheme in _schemes() else f"{scheme} URLs are not allowed"


def webhook_url_validate(url: Any) -> str:
    """The URL a merchant registers, or a ValidationError naming `url`: https (http too when
    private URLs are allowed), no credentials, a host that resolves, only to public
    addresses."""
    url = validate_text(url, param="url", max_length=URL_MAX_LENGTH, required=True)
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as error:
        raise ValidationError(f"url is not a valid URL: {error}", param="url") from error
    schemes = _schemes()
    if parts.scheme.lower() not in schemes:
        raise ValidationError(
            f"url must be {' or '.join(sorted(schemes))}", code="url_scheme", param="url"
        )
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "url must not carry credentials (user:password@)", code="url_credentials", param="url"
        )
    host = parts.hostname
    if not host:
        raise ValidationError("url has no host", param="url")
    if settings.WEBHOOKS_ALLOW_PRIVATE_URLS:
        return url
    try:
        addresses = host_addresses(host, port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError) as error:
        raise ValidationError(
            f"url's host {host} does not resolve", code="url_unresolvable", param="url"
        ) from error
    refusal = _refusal(host, addresses)
    if refusal is not None:
        raise ValidationError(f"url refused: {refusal}", code="url_not_public", param="url")
    return url


# When the request this thread is making must be done by (time.monotonic()), or None.
_deadline = threading.local()


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every read and write of the request made inside ends within `seconds` from now:
    httpx's timeouts are per read, so an endpoint that trickles a byte now and then would
    hold the worker (and outlive the attempt's lease) for as long as it likes."""
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = getattr(_deadline, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the delivery's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes end by the deadline of the request using it
    (pooled connections serve one request at a time, in its thread)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _CheckedNetworkBackend(httpcore.SyncBackend):
    """Opens each connection to an address resolved and checked here, once: the one
    connected to is the one checked. TLS still names the host (SNI and the certificate
    check use the URL's host name, not the address)."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = host_addresses(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"{host} does not resolve: {error}") from error
        refusal = _refusal(host, addresses)
        if refusal is not None:
            raise AddressRefused(refusal)
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            super().connect_tcp(str(addresses[0]), port, timeout, local_address, socket_options)
        )


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False, retries=0)
        # httpx builds its pool without a way to pass a network backend: the same pool,
        # with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedNetworkBackend(),
        )


def checked_client(*, timeout: float) -> httpx.Client:
    """An HTTP client for deliveries: every connection checked as above, no proxy from
    the environment, redirects never followed (a 3xx is an answer, and a failure)."""
    return httpx.Client(
        transport=_CheckedTransport(limits=httpx.Limits(max_connections=20)),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )
