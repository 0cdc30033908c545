"""The Adyen adapter: its Checkout-like JSON format (docs/providers.md) on httpx.

One httpx client (keep-alive) per adapter, from transport.py: the provider's timeouts, no
redirects, a response size limit. Retries with tenacity under the policy both adapters
share (transport.py): every POST carries its idempotency key and every GET is safe, so a
connection failure, a 409, 429 or 5xx is retried a few times with backoff and jitter, or
after the provider's Retry-After; a read timeout is not retried inside the call.

Adyen's `reference` (merchantReference) is the attempt id, which is also the idempotency
key: a lost answer is found again with GET …?reference=; our own payment, refund or payout
id goes in metadata moneta_reference.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import tenacity
from django.conf import settings
from django.utils import timezone

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
    RawResponse,
    ResponseRefused,
    backoff_seconds,
    connection_error_retryable,
    provider_http_client,
    response_read,
    retry_after_seconds,
    status_retryable,
)

logger = logging.getLogger(__name__)

NAME = "adyen"

_PAYMENT_STATUSES = {
    "received": ResultStatus.PENDING,
    "authorised": ResultStatus.REQUIRES_CAPTURE,
    "captured": ResultStatus.SUCCEEDED,
    "cancelled": ResultStatus.CANCELED,
}
_REFUND_STATUSES = {
    "received": ResultStatus.PENDING,
    "refunded": ResultStatus.SUCCEEDED,
    "failed": ResultStatus.FAILED,
}
_PAYOUT_STATUSES = {
    "received": ResultStatus.PENDING,
    "paid": ResultStatus.SUCCEEDED,
    "failed": ResultStatus.FAILED,
}
# Notification event codes -> which of our operations they report on.
_EVENT_KINDS = {
    "AUTHORISATION": OperationKind.AUTHORIZE,
    "CAPTURE": OperationKind.CAPTURE,
    "CANCELLATION": OperationKind.CANCEL,
    "REFUND": OperationKind.REFUND,
    "REFUND_FAILED": OperationKind.REFUND,
    "PAYOUT_THIRDPARTY": OperationKind.PAYOUT,
}
# The fields the notification HMAC covers, in order (then value, currency, eventCode,
# success).
_HMAC_FIELDS = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference")


def _money(value: Any) -> tuple[int | None, str]:
    """An Adyen amount object {"value", "currency"} as (minor units, currency)."""
    if not isinstance(value, dict):
        return None, ""
    minor = value.get("value")
    currency = value.get("currency")
    return (
        minor if isinstance(minor, int) and not isinstance(minor, bool) else None,
        currency.upper() if isinstance(currency, str) else "",
    )


def _payment_result(data: dict[str, Any], *, canceled: ResultStatus) -> ProviderResult:
    """An Adyen payment (the answer to POST /payments, or its current state) in our
    vocabulary; `canceled` says what `cancelled` means (SUCCEEDED after a cancel)."""
    reference = data.get("pspReference")
    if not isinstance(reference, str) or not reference:
        return result_unknown(code="invalid_response", message="The payment has no pspReference.")
    result_code, status_name = data.get("resultCode"), data.get("status")
    if result_code == "Refused" or status_name == "refused":
        return result_declined(
            provider=NAME,
            code=str(data.get("refusalReasonCode") or ""),
            reference=reference,
            raw=data,
        )
    if result_code == "Error":
        return result_unknown(
            code="provider_error",
            message=str(data.get("refusalReason") or "The provider reported an error."),
            reference=reference,
            raw=data,
        )
    status = canceled if status_name == "cancelled" else _PAYMENT_STATUSES.get(str(status_name))
    if status is None:
        return result_unknown(
            code="invalid_response",
            message=f"Payment status {status_name!r} ({result_code!r}) is not one we expect.",
            reference=reference,
            raw=data,
        )
    amount, currency = _money(data.get("amount"))
    return ProviderResult(
        status=status,
        reference=reference,
        amount=amount,
        currency=currency,
        amount_capturable=_money(data.get("amountCapturable"))[0],
        amount_captured=_money(data.get("amountCaptured"))[0],
        raw=data,
    )


def _money_object_result(
    data: dict[str, Any], statuses: Mapping[str, ResultStatus]
) -> ProviderResult:
    """A refund or a payout in our vocabulary."""
    reference, status_name = data.get("pspReference"), data.get("status")
    status = statuses.get(str(status_name))
    if not isinstance(reference, str) or not reference or status is None:
        return result_unknown(
            code="invalid_response",
            message=f"An answer without a pspReference or a known status ({status_name!r}).",
            reference=reference if isinstance(reference, str) else "",
            raw=data,
        )
    amount, currency = _money(data.get("amount"))
    return ProviderResult(
        status=status,
        reference=reference,
        amount=amount,
        currency=currency,
        failure_code="provider_failed" if status == ResultStatus.FAILED else "",
        raw=data,
    )


def _error_result(raw: RawResponse, data: Any) -> ProviderResult:
    """What an error answer (4xx, 5xx) means for us."""
    body = data if isinstance(data, dict) else {}
    code = str(body.get("errorCode") or "")
    message = str(body.get("message") or f"The provider answered {raw.status_code}.")
    status = raw.status_code
    if status == 429:
        return result_error(
            code="rate_limited",
            message=message,
            http_status=status,
            retry_after=retry_after_seconds(raw.headers),
            raw=body,
        )
    if status == 503:  # refused before anything was done
        return result_error(
            code="provider_unavailable",
            message=message,
            http_status=status,
            retry_after=retry_after_seconds(raw.headers),
            raw=body,
        )
    if status >= 500:
        return result_unknown(code="provider_error", message=message, http_status=status, raw=body)
    if status in (401, 403):
        return result_error(
            code="provider_authentication",
            message=f"The provider refused our credentials: {message}",
            http_status=status,
            raw=body,
        )
    if code == "idempotency_error":
        # The key was used for another request: what it did is for a retrieve to tell.
        return result_unknown(code=code, message=message, http_status=status, raw=body)
    if status in (400, 404, 422) and code:
        return result_declined(provider=NAME, code=code, http_status=status, raw=body)
    return result_unknown(
        code="invalid_response",
        message=f"The provider's answer could not be read ({status}).",
        http_status=status,
        raw=body,
    )


def _wait(state: tenacity.RetryCallState) -> float:
    """Backoff before the next try: the answer's Retry-After, or exponential with jitter."""
    outcome = state.outcome
    retry_after = None
    if outcome is not None and not outcome.failed:
        retry_after = retry_after_seconds(outcome.result().headers)
    return backoff_seconds(state.attempt_number, retry_after)


def _answer_retryable(raw: RawResponse) -> bool:
    return status_retryable(raw.status_code, raw.headers)


def _error_retryable(error: BaseException) -> bool:
    return isinstance(error, Exception) and connection_error_retryable(error)


class AdyenAdapter:
    """payments.providers.base.ProviderAdapter for the Adyen format."""

    name = NAME
    # Each notification item carries its own signature: no header signs it.
    webhook_signature_headers: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._client = provider_http_client(provider=NAME, path="/adyen/v71")
        self._client.headers["X-API-Key"] = settings.ADYEN_API_KEY
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(settings.PROVIDER_MAX_NETWORK_RETRIES + 1),
            wait=_wait,
            retry=(
                tenacity.retry_if_exception(_error_retryable)
                | tenacity.retry_if_result(_answer_retryable)
            ),
            # Out of tries: the last answer (mapped below), or the last exception raised.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=True,
        )

    def close(self) -> None:
        self._client.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        idempotency_key: str = "",
    ) -> RawResponse:
        """One request, retried by the policy; raises httpx errors and ResponseRefused."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}

        def once() -> RawResponse:
            with self._client.stream(
                method, path, json=body, params=params, headers=headers
            ) as response:
                return response_read(response)

        # A copy per call: a Retrying keeps the state of the call it runs.
        answer: RawResponse = self._retrying.copy()(once)
        return answer

    def _call(
        self,
        method: str,
        path: str,
        to_result: Callable[[dict[str, Any]], ProviderResult],
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        idempotency_key: str = "",
    ) -> ProviderResult:
        """One request through the circuit breaker, its answer mapped to a result."""

        def call() -> ProviderResult:
            try:
                raw = self._send(
                    method, path, body=body, params=params, idempotency_key=idempotency_key
                )
            except ResponseRefused as error:
                return result_unknown(code=error.code, message=error.message)
            except httpx.TimeoutException as error:
                return result_unknown(
                    code="timeout", message=f"No answer in time ({type(error).__name__})."
                )
            except httpx.TransportError as error:
                return result_unknown(
                    code="connection_error",
                    message=f"The connection failed ({type(error).__name__}).",
                )
            try:
                data = json.loads(raw.body)
            except ValueError:
                data = None
            if raw.status_code >= 400:
                return _error_result(raw, data)
            if raw.status_code not in (200, 201) or not isinstance(data, dict):
                return result_unknown(
                    code="invalid_response",
                    message=f"The provider's answer ({raw.status_code}) is not a JSON object.",
                    http_status=raw.status_code,
                )
            return to_result(data)

        return circuit_guard(NAME, call)

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        to_result: Callable[[dict[str, Any]], ProviderResult],
        idempotency_key: str,
    ) -> ProviderResult:
        return self._call(
            "POST",
            path,
            to_result,
            body={**body, "merchantAccount": settings.ADYEN_MERCHANT_ACCOUNT},
            idempotency_key=idempotency_key,
        )

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
        body: dict[str, Any] = {
            "amount": {"value": amount, "currency": currency.upper()},
            "reference": idempotency_key,
            "paymentMethod": {"type": "scheme", "storedPaymentMethodId": payment_method},
            "metadata": self._metadata(reference=reference, idempotency_key=idempotency_key),
        }
        if capture:
            body["captureDelayHours"] = 0  # absent: manual capture
        result = self._post(
            "/payments",
            body,
            lambda data: _payment_result(data, canceled=ResultStatus.CANCELED),
            idempotency_key,
        )
        return result_checked(result, amount=amount, currency=currency)

    def _modification_confirmed(
        self, modification: dict[str, Any], done: Callable[[ProviderResult], bool]
    ) -> ProviderResult:
        """A capture or cancel Adyen `received`: the payment's state asked at once (the
        provider applies it at once, the notification follows); SUCCEEDED when the payment
        shows it done, else PENDING (the outcome comes by notification or retrieve).
        The result's reference is the payment's, by which it is retrieved."""
        payment = modification.get("paymentPspReference")
        if not isinstance(payment, str) or not payment or modification.get("status") != "received":
            return result_unknown(
                code="invalid_response", message="A modification answer we do not expect."
            )
        current = self._retrieve_payment(payment, canceled=ResultStatus.SUCCEEDED)
        if done(current):
            return current
        amount, currency = _money(modification.get("amount"))
        return ProviderResult(
            status=ResultStatus.PENDING,
            reference=payment,
            amount=amount,
            currency=currency,
            raw=modification,
        )

    def capture(
        self, *, idempotency_key: str, reference: str, amount: int, currency: str
    ) -> ProviderResult:
        def captured(result: ProviderResult) -> bool:
            return result.status == ResultStatus.SUCCEEDED and result.amount_captured == amount

        answer = self._post(
            f"/payments/{reference}/captures",
            {
                "amount": {"value": amount, "currency": currency.upper()},
                "reference": idempotency_key,
            },
            lambda data: self._modification_confirmed(data, captured),
            idempotency_key,
        )
        if answer.status == ResultStatus.PENDING:
            return result_checked(answer, amount=amount, currency=currency)
        return result_checked(answer, amount=amount, currency=currency, captured=True)

    def cancel(self, *, idempotency_key: str, reference: str) -> ProviderResult:
        return self._post(
            f"/payments/{reference}/cancels",
            {"reference": idempotency_key},
            lambda data: self._modification_confirmed(
                data, lambda result: result.status == ResultStatus.SUCCEEDED
            ),
            idempotency_key,
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
        result = self._post(
            f"/payments/{payment_reference}/refunds",
            {
                "amount": {"value": amount, "currency": currency.upper()},
                "reference": idempotency_key,
                "metadata": self._metadata(reference=reference, idempotency_key=idempotency_key),
            },
            lambda data: _money_object_result(data, _REFUND_STATUSES),
            idempotency_key,
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
        result = self._post(
            "/payouts",
            {
                "amount": {"value": amount, "currency": currency.upper()},
                "reference": idempotency_key,
                "bankAccount": {"token": destination},
                "metadata": self._metadata(reference=reference, idempotency_key=idempotency_key),
            },
            lambda data: _money_object_result(data, _PAYOUT_STATUSES),
            idempotency_key,
        )
        return result_checked(result, amount=amount, currency=currency)

    def _retrieve_payment(self, reference: str, *, canceled: ResultStatus) -> ProviderResult:
        return self._send_get(
            f"/payments/{reference}", lambda data: _payment_result(data, canceled=canceled)
        )

    def _send_get(
        self, path: str, to_result: Callable[[dict[str, Any]], ProviderResult]
    ) -> ProviderResult:
        """A GET inside a call already guarded by the breaker (a modification's check)."""
        try:
            raw = self._send("GET", path)
            data = json.loads(raw.body)
        except (httpx.HTTPError, ResponseRefused, ValueError) as error:
            return result_unknown(code="invalid_response", message=str(error))
        if raw.status_code != 200 or not isinstance(data, dict):
            return _error_result(raw, data)
        return to_result(data)

    def retrieve(
        self, *, kind: OperationKind, reference: str = "", idempotency_key: str = ""
    ) -> ProviderResult:
        if not (reference or idempotency_key):
            raise ValueError("retrieve needs a reference or an idempotency key")
        path, to_result = _RETRIEVABLE.get(kind, _RETRIEVABLE[OperationKind.AUTHORIZE])
        if reference:
            return self._call("GET", f"{path}/{reference}", to_result)
        # Found by its reference (the attempt id); a capture or cancel (no object of its
        # own) is retrieved by the payment's reference.
        return self._call(
            "GET",
            path,
            lambda found: _found(found, idempotency_key, to_result),
            params={"reference": idempotency_key},
        )

    def webhook_parse(self, *, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        if len(body) > settings.PROVIDER_WEBHOOK_MAX_BODY_BYTES:
            raise WebhookInvalid("body too large")
        try:
            notification = json.loads(body)
        except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
            raise WebhookInvalid("malformed JSON") from error
        items = notification.get("notificationItems") if isinstance(notification, dict) else None
        if not isinstance(items, list) or not items:
            raise WebhookInvalid("no notificationItems")
        events = []
        for wrapper in items:
            item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
            if not isinstance(item, dict):
                raise WebhookInvalid("a notification item is not an object")
            event = _notification_event(item)
            if event is not None:
                events.append(event)
        return events

    def settlement_report(self, *, date: datetime.date) -> list[SettlementLine]:
        try:
            raw = self._send("GET", "/settlement_report", params={"date": date.isoformat()})
        except (httpx.HTTPError, ResponseRefused) as error:
            raise SettlementReportError(
                f"{NAME}: the report could not be fetched: {error}"
            ) from error
        return settlement.settlement_lines(provider=NAME, raw=raw)


def _found(
    found: dict[str, Any],
    idempotency_key: str,
    to_result: Callable[[dict[str, Any]], ProviderResult],
) -> ProviderResult:
    """The object a lookup by reference (the attempt id) found."""
    matches = [
        item
        for item in found.get("data") or []
        if isinstance(item, dict)
        and idempotency_key in (item.get("merchantReference"), item.get("reference"))
    ]
    if not matches:
        return result_not_found(message="The provider has nothing for this attempt.")
    return to_result(matches[0])


# What retrieve asks for each kind: (path, its mapping). A capture or a cancel is asked
# about through its payment.
_RETRIEVABLE: dict[OperationKind, tuple[str, Callable[[dict[str, Any]], ProviderResult]]] = {
    OperationKind.AUTHORIZE: (
        "/payments",
        lambda data: _payment_result(data, canceled=ResultStatus.CANCELED),
    ),
    OperationKind.REFUND: ("/refunds", lambda data: _money_object_result(data, _REFUND_STATUSES)),
    OperationKind.PAYOUT: ("/payouts", lambda data: _money_object_result(data, _PAYOUT_STATUSES)),
}


def _hmac_signature(item: dict[str, Any], amount: Any) -> str:
    signed = ":".join(
        [
            *(str(item.get(name) or "") for name in _HMAC_FIELDS),
            str(amount.get("value")),
            str(amount.get("currency")),
            str(item.get("eventCode")),
            str(item.get("success")),
        ]
    )
    key = bytes.fromhex(settings.ADYEN_HMAC_KEY)
    # surrogatepass: a lone surrogate (a JSON escape, in a body anyone may POST) is bytes
    # that match no signature, not a UnicodeEncodeError before the check.
    signed_bytes = signed.encode("utf-8", "surrogatepass")
    return base64.b64encode(hmac.new(key, signed_bytes, hashlib.sha256).digest()).decode()


def _notification_event(item: dict[str, Any]) -> ProviderEvent | None:
    """A notification item, verified, in our vocabulary; None for an event code we do not
    act on (accepted, so that the provider does not send it again)."""
    amount = item.get("amount")
    additional = item.get("additionalData")
    signature = additional.get("hmacSignature") if isinstance(additional, dict) else None
    if not isinstance(amount, dict) or not isinstance(signature, str):
        raise WebhookInvalid("a notification item without amount or hmacSignature")
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as error:
        raise WebhookInvalid("bad signature") from error
    expected = base64.b64decode(_hmac_signature(item, amount))
    if not hmac.compare_digest(given, expected):
        raise WebhookInvalid("bad signature")
    try:
        created = datetime.datetime.fromisoformat(str(item.get("eventDate")))
    except ValueError as error:
        raise WebhookInvalid("eventDate is not a date") from error
    if created.tzinfo is None:
        raise WebhookInvalid("eventDate has no time zone")
    # At most the tolerance old, and (Standard Webhooks' policy) at most the tolerance ahead.
    age = (timezone.now() - created).total_seconds()
    if age > settings.PROVIDER_WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookInvalid("stale timestamp")
    if -age > settings.PROVIDER_WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookInvalid("timestamp in the future")
    code, success = item.get("eventCode"), item.get("success")
    psp = item.get("pspReference")
    if not isinstance(code, str) or success not in ("true", "false") or not isinstance(psp, str):
        raise WebhookInvalid("a notification item without eventCode, success or pspReference")
    kind = _EVENT_KINDS.get(code)
    if kind is None:
        logger.info("adyen notification ignored", extra={"event_code": code})
        return None
    value, currency = _money(amount)
    # A capture or cancel is about its payment (originalReference), as their results are.
    reference = (
        str(item.get("originalReference") or "")
        if kind in (OperationKind.CAPTURE, OperationKind.CANCEL)
        else psp
    )
    result = _notification_result(kind, item, succeeded=success == "true", reference=reference)
    return ProviderEvent(
        provider=NAME,
        event_id=f"{psp}:{code}:{success}",  # Adyen's own deduplication key
        type=code,
        kind=kind,
        reference=reference,
        result=ProviderResult(
            status=result.status,
            reference=reference,
            amount=value,
            currency=currency,
            amount_captured=value if kind == OperationKind.CAPTURE and success == "true" else None,
            decline_class=result.decline_class,
            failure_code=result.failure_code,
            failure_message=result.failure_message,
            raw=item,
        ),
        created=created,
        raw=item,
        attempt_reference=str(item.get("merchantReference") or ""),
    )


def _notification_result(
    kind: OperationKind, item: dict[str, Any], *, succeeded: bool, reference: str
) -> ProviderResult:
    """What a notification says happened. AUTHORISATION says "authorised", not whether
    the payment was captured (with captureDelayHours 0 Adyen captures at once):
    REQUIRES_CAPTURE, and a consumer that must know asks retrieve."""
    if kind == OperationKind.AUTHORIZE:
        if succeeded:
            return ProviderResult(status=ResultStatus.REQUIRES_CAPTURE, reference=reference)
        additional = item.get("additionalData") or {}
        return result_declined(
            provider=NAME, code=str(additional.get("refusalReasonCode") or ""), reference=reference
        )
    if item.get("eventCode") == "REFUND_FAILED" or not succeeded:
        return ProviderResult(
            status=ResultStatus.FAILED,
            reference=reference,
            failure_code="provider_failed",
            failure_message=str(item.get("reason") or "The provider reports it failed."),
        )
    return ProviderResult(status=ResultStatus.SUCCEEDED, reference=reference)
