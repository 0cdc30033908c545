"""How the adapters reach a provider: one httpx client per adapter (keep-alive), with the
provider's connect and read timeouts, never following a redirect, reading at most
PROVIDER_MAX_RESPONSE_BYTES of an answer; and the retry policy both adapters share.

With PROVIDER_SIMULATOR_URL set the client speaks HTTP to it; unset (the demo), it sends
the same requests to the simulator's WSGI application in this process. Nothing else
differs between the two modes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

# The in-process simulator answers any host; this one says where the requests go.
IN_PROCESS_BASE_URL = "http://provider-simulator.in-process"


class ResponseRefused(Exception):
    """An answer we do not read: a redirect or a body over the size limit. Whatever the
    provider did with the request is unknown."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code  # redirect | response_too_large
        self.message = message


@dataclass(frozen=True)
class RawResponse:
    """An answer read whole (within the limit)."""

    status_code: int
    headers: httpx.Headers
    body: bytes


def provider_http_client(*, provider: str, path: str = "") -> httpx.Client:
    """A client for `provider` (stripe | adyen) whose base URL is the simulator's, plus
    `path`: over HTTP when PROVIDER_SIMULATOR_URL is set, in-process otherwise."""
    prefix = provider.upper()
    connect = getattr(settings, f"{prefix}_CONNECT_TIMEOUT_SECONDS")
    read = getattr(settings, f"{prefix}_READ_TIMEOUT_SECONDS")
    timeout = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
    base_url: str = settings.PROVIDER_SIMULATOR_URL
    transport: httpx.BaseTransport | None = None
    if not base_url:
        base_url = IN_PROCESS_BASE_URL
        transport = httpx.WSGITransport(app=simulator_in_process())
    return httpx.Client(
        base_url=base_url.rstrip("/") + path,
        timeout=timeout,
        follow_redirects=False,
        transport=transport,
        # The provider's address is configured; the environment's proxies and .netrc
        # must not redirect our requests or add credentials to them.
        trust_env=False,
        # Enough for a threaded worker's calls at once; beyond, a call waits for one.
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )


def simulator_in_process() -> Any:
    """The simulator's WSGI application in this process, with our credentials."""
    from simulator.app import inprocess_app  # the demo only: loaded when first needed

    return inprocess_app(
        store_path=settings.PROVIDER_SIMULATOR_STORE,
        stripe_api_key=settings.STRIPE_API_KEY,
        stripe_webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
        adyen_api_key=settings.ADYEN_API_KEY,
        adyen_hmac_key=settings.ADYEN_HMAC_KEY,
        adyen_merchant_account=settings.ADYEN_MERCHANT_ACCOUNT,
        async_seconds=settings.PROVIDER_SIMULATOR_ASYNC_SECONDS,
    )


def response_read(response: httpx.Response) -> RawResponse:
    """The answer of a streamed request, read whole; ResponseRefused for a redirect or a
    body longer than PROVIDER_MAX_RESPONSE_BYTES (checked before reading past it)."""
    if response.is_redirect or 300 <= response.status_code < 400:
        raise ResponseRefused(
            "redirect",
            f"The provider answered {response.status_code} (a redirect, not followed).",
        )
    limit: int = settings.PROVIDER_MAX_RESPONSE_BYTES
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseRefused(
            "response_too_large", f"The provider's answer is {declared} bytes, over {limit}."
        )
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise ResponseRefused(
                "response_too_large", f"The provider's answer is over {limit} bytes."
            )
    return RawResponse(response.status_code, response.headers, bytes(body))


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The provider's Retry-After in seconds (delta form), or None."""
    value = headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def status_retryable(status_code: int, headers: httpx.Headers) -> bool:
    """Whether an answer may be retried at once with the same idempotency key: the
    provider's Stripe-Should-Retry first, then 409 (a concurrent request with the key),
    429 and 5xx. A Retry-After longer than PROVIDER_RETRY_MAX_DELAY_SECONDS is not waited
    for inside a call: the result hands it to the task."""
    should_retry = headers.get("stripe-should-retry")
    if should_retry == "false":
        return False
    if should_retry != "true" and not (status_code in (409, 429) or status_code >= 500):
        return False
    retry_after = retry_after_seconds(headers)
    return retry_after is None or retry_after <= settings.PROVIDER_RETRY_MAX_DELAY_SECONDS


def backoff_seconds(retry: int, retry_after: float | None) -> float:
    """How long to wait before retry number `retry` (1, 2, …): the provider's Retry-After
    when it gave one, else exponential from PROVIDER_RETRY_BASE_DELAY_SECONDS with full
    jitter, capped at PROVIDER_RETRY_MAX_DELAY_SECONDS."""
    if retry_after is not None:
        return retry_after
    ceiling = min(
        settings.PROVIDER_RETRY_BASE_DELAY_SECONDS * 2 ** (retry - 1),
        settings.PROVIDER_RETRY_MAX_DELAY_SECONDS,
    )
    # Jitter spreads the retries of many workers hit by the same outage.
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - not a secret


def connection_error_retryable(error: Exception) -> bool:
    """Transport failures retried inside a call (the request carries its idempotency key,
    so a retry never acts twice): a connection that failed or was reset. A read timeout is
    not: the provider is slow, and waiting for it again would hold the worker for several
    read timeouts; the attempt is unknown and the task asks again later."""
    return isinstance(error, httpx.TransportError) and not isinstance(error, httpx.ReadTimeout)
