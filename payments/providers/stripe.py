"""The Stripe adapter, on the official SDK (a StripeClient pointed at the simulator).

The SDK makes the requests and retries them (same idempotency key) by its own loop; its
HTTP client is ours (StripeHttpClient): our httpx client with the provider's timeouts, no
redirects, a response size limit, our retry policy (transport.py: Stripe-Should-Retry,
Retry-After, backoff with jitter, no retry after a read timeout). Every object we create
carries metadata moneta_reference (our payment, refund or payout id) and moneta_attempt (the
attempt id, which is also the idempotency key), so that a lost answer can be found again
through the search endpoint.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import stripe
from django.conf import settings

from payments.providers import settlement
from payments.providers.base import (
    OperationKind,
    ProviderEvent,
    ProviderResult,
    ResultStatus,
    SettlementLine,
    SettlementReportError,
    WebhookInvalid,
)
from payments.providers.circuit import circuit_guard
from payments.providers.results import (
    result_checked,
    result_declined,
    result_error,
    result_not_found,
    result_unknown,
)
from payments.providers.transport import (
    ResponseRefused,
    backoff_seconds,
    connection_error_retryable,
    provider_http_client,
    response_read,
    retry_after_seconds,
    status_retryable,
)

logger = logging.getLogger(__name__)

NAME = "stripe"

_INTENT_STATUSES = {
    "succeeded": ResultStatus.SUCCEEDED,
    "requires_capture": ResultStatus.REQUIRES_CAPTURE,
    "processing": ResultStatus.PENDING,
    "canceled": ResultStatus.CANCELED,
}
_REFUND_STATUSES = {
    "pending": ResultStatus.PENDING,
    "succeeded": ResultStatus.SUCCEEDED,
    "failed": ResultStatus.FAILED,
    "canceled": ResultStatus.FAILED,
}
_PAYOUT_STATUSES = {
    "pending": ResultStatus.PENDING,
    "in_transit": ResultStatus.PENDING,
    "paid": ResultStatus.SUCCEEDED,
    "failed": ResultStatus.FAILED,
    "canceled": ResultStatus.FAILED,
}
_EVENT_KINDS = {
    "payment_intent": OperationKind.AUTHORIZE,
    "refund": OperationKind.REFUND,
    "payout": OperationKind.PAYOUT,
}


class _TransportError(stripe.APIConnectionError):
    """A request that got no usable answer, with the transport's reason."""

    def __init__(self, message: str, *, reason: str, should_retry: bool):
        super().__init__(message, should_retry=should_retry)
        self.reason = reason


class StripeHttpClient(stripe.HTTPClient):
    """The SDK's HTTP client on our httpx client (the SDK's own HTTPXClient builds its
    client itself, so it could neither go in-process nor take our limits)."""

    name = "moneta-httpx"

    def __init__(self, client: httpx.Client):
        super().__init__()
        self._client = client

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        self._thread_local.retry_after = None
        try:
            with self._client.stream(method, url, headers=headers, content=post_data) as response:
                raw = response_read(response)
        except ResponseRefused as error:
            raise _TransportError(error.message, reason=error.code, should_retry=False) from error
        except httpx.TimeoutException as error:
            raise _TransportError(
                f"No answer in time ({type(error).__name__}).",
                reason="timeout",
                should_retry=connection_error_retryable(error),
            ) from error
        except httpx.TransportError as error:
            raise _TransportError(
                f"The connection failed ({type(error).__name__}).",
                reason="connection_error",
                should_retry=connection_error_retryable(error),
            ) from error
        self._thread_local.retry_after = retry_after_seconds(raw.headers)
        # The SDK decodes bytes itself (its own HTTPXClient returns bytes too).
        return raw.body, raw.status_code, raw.headers  # type: ignore[return-value]

    def _should_retry(
        self,
        response: tuple[Any, int, Mapping[str, str] | None] | None,
        api_connection_error: stripe.APIConnectionError | None,
        num_retries: int,
        max_network_retries: int | None,
    ) -> bool:
        if response is None or num_retries >= (max_network_retries or 0):
            return super()._should_retry(
                response, api_connection_error, num_retries, max_network_retries
            )
        _, status_code, headers = response
        return status_retryable(status_code, httpx.Headers(headers or {}))

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return backoff_seconds(num_retries, getattr(self._thread_local, "retry_after", None))

    def close(self) -> None:
        self._client.close()


def _minor(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _object(response: Any, expected: str) -> dict[str, Any] | None:
    """The answered object as a dict, when it is an `expected` object (with an id and a
    status, unless it is a search result)."""
    data = response.to_dict() if isinstance(response, stripe.StripeObject) else None
    if not isinstance(data, dict) or data.get("object") != expected:
        return None
    if expected != "search_result" and not (
        isinstance(data.get("id"), str) and isinstance(data.get("status"), str)
    ):
        return None
    return data


def _intent_result(intent: dict[str, Any], *, canceled: ResultStatus) -> ProviderResult:
    """A PaymentIntent in our vocabulary; `canceled` says what its canceled status means
    (SUCCEEDED for a cancel, CANCELED for a retrieve)."""
    status_name = intent["status"]
    if status_name == "requires_payment_method":  # refused: the error says why
        error = intent.get("last_payment_error")
        error = error if isinstance(error, dict) else {}
        return result_declined(
            provider=NAME,
            code=str(error.get("decline_code") or error.get("code") or ""),
            reference=intent["id"],
            raw=intent,
        )
    status = canceled if status_name == "canceled" else _INTENT_STATUSES.get(status_name)
    if status is None:
        return result_unknown(
            code="invalid_response",
            message=f"PaymentIntent status {status_name!r} is not one we expect.",
            reference=intent["id"],
            raw=intent,
        )
    return ProviderResult(
        status=status,
        reference=intent["id"],
        amount=_minor(intent.get("amount")),
        currency=str(intent.get("currency") or "").upper(),
        amount_capturable=_minor(intent.get("amount_capturable")),
        amount_captured=_minor(intent.get("amount_received")),
        raw=intent,
    )


def _money_object_result(
    data: dict[str, Any], statuses: Mapping[str, ResultStatus]
) -> ProviderResult:
    """A Refund or a Payout in our vocabulary."""
    status = statuses.get(data["status"])
    if status is None:
        return result_unknown(
            code="invalid_response",
            message=f"{data['object']} status {data['status']!r} is not one we expect.",
            reference=data["id"],
            raw=data,
        )
    return ProviderResult(
        status=status,
        reference=data["id"],
        amount=_minor(data.get("amount")),
        currency=str(data.get("currency") or "").upper(),
        failure_code=str(data.get("failure_code") or data.get("failure_reason") or ""),
        raw=data,
    )


def _error_result(error: stripe.StripeError) -> ProviderResult:
    """What a Stripe error means for us (the SDK's error classes follow the HTTP status)."""
    http_status = error.http_status
    body: dict[str, Any] = error.json_body if isinstance(error.json_body, dict) else {}
    detail: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    message = str(detail.get("message") or error.user_message or "")
    if isinstance(error, _TransportError):
        return result_unknown(code=error.reason, message=str(error.user_message or error.reason))
    if isinstance(error, stripe.CardError):
        intent = detail.get("payment_intent")
        return result_declined(
            provider=NAME,
            code=str(detail.get("decline_code") or detail.get("code") or ""),
            reference=intent.get("id", "") if isinstance(intent, dict) else "",
            http_status=http_status,
            raw=body,
        )
    if isinstance(error, stripe.RateLimitError):
        return result_error(
            code="rate_limited",
            message=message or "The provider is limiting our requests.",
            http_status=http_status,
            retry_after=retry_after_seconds(httpx.Headers(dict(error.headers or {}))),
            raw=body,
        )
    if isinstance(error, stripe.IdempotencyError):
        # The key was used for another request: what it did is for a retrieve to tell.
        return result_unknown(
            code="idempotency_error", message=message, http_status=http_status, raw=body
        )
    if isinstance(error, stripe.InvalidRequestError):
        return result_declined(
            provider=NAME, code=str(detail.get("code") or ""), http_status=http_status, raw=body
        )
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return result_error(
            code="provider_authentication",
            message=f"The provider refused our credentials: {message}",
            http_status=http_status,
            raw=body,
        )
    if http_status == 503:  # refused before anything was done
        return result_error(
            code="provider_unavailable",
            message=message or "The provider is unavailable.",
            http_status=http_status,
            retry_after=retry_after_seconds(httpx.Headers(dict(error.headers or {}))),
            raw=body,
        )
    if http_status is not None and http_status >= 500:
        return result_unknown(
            code="provider_error",
            message=message or f"The provider answered {http_status}.",
            http_status=http_status,
            raw=body,
        )
    # An answer the SDK could not read (not JSON, not an object) or any other status.
    return result_unknown(
        code="invalid_response",
        message=f"The provider's answer could not be read ({http_status}).",
        http_status=http_status,
    )


SIGNATURE_HEADER = "Stripe-Signature"


class StripeAdapter:
    """payments.providers.base.ProviderAdapter for Stripe's format."""

    name = NAME
    # The headers that sign a webhook, kept with it so that it can be verified again.
    webhook_signature_headers: tuple[str, ...] = (SIGNATURE_HEADER,)

    def __init__(self) -> None:
        self._http = StripeHttpClient(provider_http_client(provider=NAME))
        self._client = stripe.StripeClient(
            settings.STRIPE_API_KEY,
            base_addresses={"api": str(self._http._client.base_url).rstrip("/")},
            max_network_retries=settings.PROVIDER_MAX_NETWORK_RETRIES,
            http_client=self._http,
        )

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        request: Callable[[], Any],
        expected: str,
        to_result: Callable[[dict[str, Any]], ProviderResult],
    ) -> ProviderResult:
        """One request through the circuit breaker, its answer mapped to a result."""

        def call() -> ProviderResult:
            try:
                data = _object(request(), expected)
            except stripe.StripeError as error:
                return _error_result(error)
            if data is None:
                return result_unknown(
                    code="invalid_response",
                    message=f"The provider's answer is not a {expected}.",
                )
            return to_result(data)

        return circuit_guard(NAME, call)

    @staticmethod
    def _options(idempotency_key: str) -> stripe.RequestOptions:
        return {"idempotency_key": idempotency_key}

    @staticmethod
    def _metadata(*, reference: str, idempotency_key: str) -> dict[str, str]:
        return {"moneta_reference": reference, "moneta_attempt": idempotency_key}

    def authorize(
        self,
        *,
        idempotency_key: str,
        amount: int,
        currency: str,
        payment_method: str,
        capture: bool,
        reference: str,
    ) -> ProviderResult:
        result = self._call(
            lambda: self._client.v1.payment_intents.create(
                {
                    "amount": amount,
                    "currency": currency.lower(),
                    "payment_method": payment_method,
                    "confirm": True,
                    "capture_method": "automatic" if capture else "manual",
                    "metadata": self._metadata(
                        reference=reference, idempotency_key=idempotency_key
                    ),
                },
                self._options(idempotency_key),
            ),
            "payment_intent",
            lambda intent: _intent_result(intent, canceled=ResultStatus.CANCELED),
        )
        return result_checked(result, amount=amount, currency=currency)

    def capture(
        self, *, idempotency_key: str, reference: str, amount: int, currency: str
    ) -> ProviderResult:
        result = self._call(
            lambda: self._client.v1.payment_intents.capture(
                reference, {"amount_to_capture": amount}, self._options(idempotency_key)
            ),
            "payment_intent",
            lambda intent: _intent_result(intent, canceled=ResultStatus.CANCELED),
        )
        return result_checked(result, amount=amount, currency=currency, captured=True)

    def cancel(self, *, idempotency_key: str, reference: str) -> ProviderResult:
        return self._call(
            lambda: self._client.v1.payment_intents.cancel(
                reference, {}, self._options(idempotency_key)
            ),
            "payment_intent",
            lambda intent: _intent_result(intent, canceled=ResultStatus.SUCCEEDED),
        )

    def refund(
        self,
        *,
        idempotency_key: str,
        payment_reference: str,
        amount: int,
        currency: str,
        reference: str,
    ) -> ProviderResult:
        result = self._call(
            lambda: self._client.v1.refunds.create(
                {
                    "payment_intent": payment_reference,
                    "amount": amount,
                    "metadata": self._metadata(
                        reference=reference, idempotency_key=idempotency_key
                    ),
                },
                self._options(idempotency_key),
            ),
            "refund",
            lambda refund: _money_object_result(refund, _REFUND_STATUSES),
        )
        return result_checked(result, amount=amount, currency=currency)

    def payout(
        self,
        *,
        idempotency_key: str,
        amount: int,
        currency: str,
        destination: str,
        reference: str,
    ) -> ProviderResult:
        result = self._call(
            lambda: self._client.v1.payouts.create(
                {
                    "amount": amount,
                    "currency": currency.lower(),
                    "destination": destination,
                    "metadata": self._metadata(
                        reference=reference, idempotency_key=idempotency_key
                    ),
                },
                self._options(idempotency_key),
            ),
            "payout",
            lambda payout: _money_object_result(payout, _PAYOUT_STATUSES),
        )
        return result_checked(result, amount=amount, currency=currency)

    def retrieve(
        self, *, kind: OperationKind, reference: str = "", idempotency_key: str = ""
    ) -> ProviderResult:
        if not (reference or idempotency_key):
            raise ValueError("retrieve needs a reference or an idempotency key")
        expected, path, to_result = _RETRIEVABLE.get(kind, _RETRIEVABLE[OperationKind.AUTHORIZE])
        if reference:
            return self._call(
                lambda: self._get(f"/v1/{path}/{reference}"),
                expected,
                to_result,
            )
        # Found by the attempt's metadata; a capture or cancel (no object of its own) is
        # retrieved by the payment's reference.
        return self._call(
            lambda: self._get(
                f"/v1/{path}/search", query=f"metadata['moneta_attempt']:'{idempotency_key}'"
            ),
            "search_result",
            lambda found: _found(found, expected, idempotency_key, to_result),
        )

    def _get(self, path: str, **query: str) -> stripe.StripeObject:
        """A GET through the SDK (its retries, its errors) of a path it has no method for:
        the searches of refunds and payouts are the simulator's."""
        response = self._client.raw_request("get", path, **query)
        return self._client.deserialize(response, api_mode="V1")

    def webhook_parse(self, *, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        """Verified by the SDK's `Webhook.construct_event` (HMAC-SHA256 over the raw bytes,
        compared in constant time, `t` at most the tolerance old); a `t` more than the
        tolerance ahead of our clock is refused too, as Standard Webhooks does (the SDK
        accepts any future `t`: a signature that stays valid forever if the signer's clock
        or the secret leaked)."""
        if len(body) > settings.PROVIDER_WEBHOOK_MAX_BODY_BYTES:
            raise WebhookInvalid("body too large")
        header = {name.lower(): value for name, value in headers.items()}.get(
            SIGNATURE_HEADER.lower(), ""
        )
        try:
            payload = body.decode("utf-8")
            event = stripe.Webhook.construct_event(
                payload,
                header,
                settings.STRIPE_WEBHOOK_SECRET,
                settings.PROVIDER_WEBHOOK_TOLERANCE_SECONDS,
            )
        except UnicodeDecodeError as error:
            raise WebhookInvalid("body is not UTF-8") from error
        except stripe.SignatureVerificationError as error:
            raise WebhookInvalid(_signature_refusal(str(error))) from error
        except (ValueError, RecursionError) as error:  # signed, yet no JSON (or too deep)
            raise WebhookInvalid("malformed JSON") from error
        except (AttributeError, TypeError) as error:  # JSON, but no object: the SDK's .get
            raise WebhookInvalid("not an event") from error
        if _signed_at(header) > time.time() + settings.PROVIDER_WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookInvalid("timestamp in the future")
        parsed = _event(event.to_dict())
        return [] if parsed is None else [parsed]

    def settlement_report(self, *, date: datetime.date) -> list[SettlementLine]:
        try:
            with self._http._client.stream(
                "GET",
                "/v1/settlement_report",
                params={"date": date.isoformat()},
                headers={"Authorization": f"Bearer {settings.STRIPE_API_KEY}"},
            ) as response:
                raw = response_read(response)
        except (httpx.HTTPError, ResponseRefused) as error:
            raise SettlementReportError(
                f"{NAME}: the report could not be fetched: {error}"
            ) from error
        return settlement.settlement_lines(provider=NAME, raw=raw)


# The SDK's SignatureVerificationError messages, as our reasons (for the log).
_SIGNATURE_REFUSALS = (
    ("No Stripe-Signature header", "signature header missing"),
    ("Unable to extract timestamp", "malformed signature header"),
    ("No signatures found with expected scheme", "no v1 signature"),
    ("Timestamp outside the tolerance", "stale timestamp"),
)


def _signature_refusal(message: str) -> str:
    return next(
        (reason for start, reason in _SIGNATURE_REFUSALS if start in message), "bad signature"
    )


def _signed_at(header: str) -> int:
    """The `t` of a signature header the SDK has verified (so it has one, a number), read
    as the SDK reads it."""
    return int(
        next(part[1] for part in (i.split("=", 2) for i in header.split(",")) if part[0] == "t")
    )


def _found(
    found: dict[str, Any],
    expected: str,
    idempotency_key: str,
    to_result: Callable[[dict[str, Any]], ProviderResult],
) -> ProviderResult:
    """The object a search by idempotency key found."""
    matches = [
        item
        for item in found.get("data") or []
        if isinstance(item, dict)
        and item.get("object") == expected
        and (item.get("metadata") or {}).get("moneta_attempt") == idempotency_key
    ]
    if not matches:
        return result_not_found(message=f"The provider has no {expected} for this attempt.")
    data = matches[0]
    if not (isinstance(data.get("id"), str) and isinstance(data.get("status"), str)):
        return result_unknown(
            code="invalid_response", message=f"The provider's {expected} has no id or status."
        )
    return to_result(data)


# What retrieve asks for each kind: (object, path, its mapping). A capture or a cancel is
# asked about through its payment.
_RETRIEVABLE: dict[OperationKind, tuple[str, str, Callable[[dict[str, Any]], ProviderResult]]] = {
    OperationKind.AUTHORIZE: (
        "payment_intent",
        "payment_intents",
        lambda intent: _intent_result(intent, canceled=ResultStatus.CANCELED),
    ),
    OperationKind.REFUND: (
        "refund",
        "refunds",
        lambda refund: _money_object_result(refund, _REFUND_STATUSES),
    ),
    OperationKind.PAYOUT: (
        "payout",
        "payouts",
        lambda payout: _money_object_result(payout, _PAYOUT_STATUSES),
    ),
}


def _event(event: Any) -> ProviderEvent | None:
    """A verified Stripe Event in our vocabulary; WebhookInvalid when it is not one; None
    for an event about an object we do not act on (accepted, so that it is not sent
    again)."""
    if not isinstance(event, dict) or event.get("object") != "event":
        raise WebhookInvalid("not an event")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(obj, dict)):
        raise WebhookInvalid("event without id, type or object")
    if not isinstance(created, int) or isinstance(created, bool):
        raise WebhookInvalid("event without a creation time")
    kind = _EVENT_KINDS.get(str(obj.get("object")))
    if kind is None:
        logger.info("stripe event ignored", extra={"event_type": event_type})
        return None
    if not (isinstance(obj.get("id"), str) and isinstance(obj.get("status"), str)):
        raise WebhookInvalid("event about an object without id or status")
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if kind == OperationKind.AUTHORIZE:
        result = _intent_result(obj, canceled=ResultStatus.CANCELED)
    else:
        result = _money_object_result(
            obj, _REFUND_STATUSES if kind == OperationKind.REFUND else _PAYOUT_STATUSES
        )
    return ProviderEvent(
        provider=NAME,
        event_id=event_id,
        type=event_type,
        kind=kind,
        reference=obj["id"],
        attempt_reference=str(metadata.get("moneta_attempt") or ""),
        result=result,
        created=datetime.datetime.fromtimestamp(created, tz=datetime.UTC),
        raw=event,
    )
