"""An Adyen-like wire format (a subset of the Checkout API): JSON bodies, the X-API-Key
header, a merchant account on every call, results as `resultCode`, modifications
(captures, cancels, refunds) answered 201 `received` with their outcome by notification,
notifications signed with an HMAC over named fields; translated to and from the engine."""

import base64
import datetime
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

from simulator.app import Call, Handler, Request, Response, WireFormat, json_response
from simulator.engine import (
    Engine,
    EngineError,
    Kind,
    Modification,
    Obj,
    Payment,
    Payout,
    Refund,
)
from simulator.reports import report_csv

# The engine's decline reasons as Adyen names them: (refusalReasonCode, refusalReason).
REFUSALS = {
    "card_declined": ("2", "Refused"),
    "insufficient_funds": ("12", "Not enough balance"),
    "expired_card": ("6", "Expired Card"),
    "fraudulent": ("20", "FRAUD"),
}
STATUS = {
    "processing": "received",
    "requires_capture": "authorised",
    "succeeded": "captured",
    "canceled": "cancelled",
    "declined": "refused",
}
REFUND_STATUS = {"pending": "received", "succeeded": "refunded", "failed": "failed"}
PAYOUT_STATUS = {"pending": "received", "paid": "paid", "failed": "failed"}
HMAC_FIELDS = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference")


def adyen_error(status: int, code: str, message: str, type: str, **kwargs: Any) -> Response:
    response = json_response(
        status,
        {"status": status, "errorCode": code, "message": message, "errorType": type},
        **kwargs,
    )
    response.store = False
    return response


def amount_of(obj: Payment | Refund | Payout, value: int | None = None) -> dict[str, Any]:
    return {"value": obj.amount if value is None else value, "currency": obj.currency}


class AdyenFormat(WireFormat):
    name = "adyen"
    prefix = "/adyen/v71/"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        route = re.compile
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", route(r"/adyen/v71/payments"), self.create_payment),
            ("GET", route(r"/adyen/v71/payments"), self.lookup("payment")),
            ("GET", route(r"/adyen/v71/payments/(\w+)"), self.retrieve_payment),
            ("POST", route(r"/adyen/v71/payments/(\w+)/captures"), self.capture),
            ("POST", route(r"/adyen/v71/payments/(\w+)/cancels"), self.cancel),
            ("POST", route(r"/adyen/v71/payments/(\w+)/refunds"), self.create_refund),
            ("GET", route(r"/adyen/v71/refunds"), self.lookup("refund")),
            ("GET", route(r"/adyen/v71/refunds/(\w+)"), self.retrieve_refund),
            ("POST", route(r"/adyen/v71/payouts"), self.create_payout),
            ("GET", route(r"/adyen/v71/payouts"), self.lookup("payout")),
            ("GET", route(r"/adyen/v71/payouts/(\w+)"), self.retrieve_payout),
            ("GET", route(r"/adyen/v71/settlement_report"), self.settlement_report),
        ]

    def new_id(self, kind: str) -> str:
        return secrets.token_hex(8).upper()  # a pspReference: 16 characters

    # The pipeline's hooks

    def authenticate(self, request: Request) -> Response | None:
        if hmac.compare_digest(request.headers.get("x-api-key", ""), self.config.adyen_api_key):
            return None
        return adyen_error(401, "000", "HTTP Status Response - Unauthorized", "security")

    def parse(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise EngineError("invalid", "invalid_json", "The body must be a JSON object.")
        account = body.get("merchantAccount")
        if account != self.config.adyen_merchant_account:
            raise EngineError(
                "invalid", "901", f"Invalid Merchant Account: {account!r}", "merchantAccount"
            )
        return body

    def error(self, error: EngineError) -> Response:
        if error.kind == "flaky":
            return adyen_error(
                500,
                "internal_error",
                error.message,
                "internal",
                headers=[("Stripe-Should-Retry", "true")],
            )
        message = f"{error.message} ({error.param})" if error.param else error.message
        status = 404 if error.kind == "missing" else 422
        return adyen_error(status, error.code, message, "validation")

    def idempotency_mismatch(self) -> Response:
        return adyen_error(
            422,
            "idempotency_error",
            "This Idempotency-Key was used with another request.",
            "validation",
        )

    def unavailable(self) -> Response:
        return adyen_error(
            503,
            "service_unavailable",
            "The service is unavailable (simulator fault).",
            "internal",
            headers=[("Stripe-Should-Retry", "true")],
        )

    def rate_limited(self, retry_after: int) -> Response:
        return adyen_error(
            429,
            "rate_limited",
            "Too many requests (simulator fault).",
            "internal",
            headers=[("Stripe-Should-Retry", "true"), ("Retry-After", str(retry_after))],
        )

    def webhook(self, event: str, obj: Obj, mod: Modification | None, now: float) -> bytes | None:
        if isinstance(obj, Payment):
            if mod is None:  # payment.settled: the asynchronous authorisation
                item = self._item(
                    "AUTHORISATION", obj.id, "", obj.attempt, amount_of(obj), True, now
                )
            else:
                code = "CAPTURE" if mod.type == "capture" else "CANCELLATION"
                item = self._item(
                    code, mod.id, obj.id, mod.reference, amount_of(obj, mod.amount), True, now
                )
        elif isinstance(obj, Refund):
            item = self._item(
                "REFUND",
                obj.id,
                obj.payment_id,
                obj.attempt,
                amount_of(obj),
                obj.status == "succeeded",
                now,
            )
        else:
            item = self._item(
                "PAYOUT_THIRDPARTY",
                obj.id,
                "",
                obj.attempt,
                amount_of(obj),
                obj.status == "paid",
                now,
            )
        return json.dumps(
            {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        ).encode()

    def _item(
        self,
        code: str,
        psp: str,
        original: str,
        reference: str,
        amount: dict[str, Any],
        success: bool,
        now: float,
    ) -> dict[str, Any]:
        item = {
            "eventCode": code,
            "success": "true" if success else "false",
            "pspReference": psp,
            "originalReference": original,
            "merchantReference": reference,
            "merchantAccountCode": self.config.adyen_merchant_account,
            "amount": amount,
            "eventDate": datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(),
        }
        if not success:
            item["reason"] = "Refused" if code == "REFUND" else "Account closed"
        item["additionalData"] = {"hmacSignature": hmac_signature(item, self.config.adyen_hmac_key)}
        return item

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        return {}  # the signature is inside each notification item

    # Routes

    def create_payment(self, engine: Engine, call: Call) -> Response:
        params = call.params
        method = params.get("paymentMethod")
        if not isinstance(method, dict) or method.get("type") != "scheme":
            raise EngineError(
                "invalid",
                "parameter_invalid",
                'paymentMethod: {"type": "scheme", ...}.',
                "paymentMethod",
            )
        delay = params.get("captureDelayHours")
        if delay not in (None, 0):
            raise EngineError(
                "invalid",
                "parameter_invalid",
                "captureDelayHours: 0 (automatic) or absent (manual capture).",
                "captureDelayHours",
            )
        value, currency = amount(params)
        payment, withhold = engine.create_payment(
            call.tx,
            provider=self.name,
            idempotency_key=call.idempotency_key,
            amount=value,
            currency=currency,
            payment_method=text(method, "storedPaymentMethodId", "paymentMethod."),
            capture=delay == 0,
            attempt=text(params, "reference"),
            metadata=metadata_of(params),
            now=call.now,
        )
        response = json_response(200, payment_details(payment))
        if withhold:
            response.hangup = "timeout"
        return response

    def retrieve_payment(self, engine: Engine, call: Call) -> Response:
        payment = engine.get_payment(call.tx, self.name, call.args[0], call.now)
        return json_response(200, payment_details(payment))

    def capture(self, engine: Engine, call: Call) -> Response:
        value, currency = amount(call.params)
        payment, mod = engine.capture(
            call.tx,
            provider=self.name,
            payment_id=call.args[0],
            amount=value,
            currency=currency,
            reference=optional_text(call.params, "reference"),
            now=call.now,
        )
        return json_response(201, modification(mod, payment, self.config.adyen_merchant_account))

    def cancel(self, engine: Engine, call: Call) -> Response:
        payment, mod = engine.cancel(
            call.tx,
            provider=self.name,
            payment_id=call.args[0],
            reference=optional_text(call.params, "reference"),
            now=call.now,
        )
        return json_response(201, modification(mod, payment, self.config.adyen_merchant_account))

    def create_refund(self, engine: Engine, call: Call) -> Response:
        value, currency = amount(call.params)
        created = engine.create_refund(
            call.tx,
            provider=self.name,
            payment_id=call.args[0],
            amount=value,
            currency=currency,
            attempt=text(call.params, "reference"),
            metadata=metadata_of(call.params),
            now=call.now,
        )
        return json_response(201, refund_details(created, self.config.adyen_merchant_account))

    def retrieve_refund(self, engine: Engine, call: Call) -> Response:
        found = engine.get_refund(call.tx, self.name, call.args[0], call.now)
        return json_response(200, refund_details(found, self.config.adyen_merchant_account))

    def create_payout(self, engine: Engine, call: Call) -> Response:
        value, currency = amount(call.params)
        bank = call.params.get("bankAccount")
        if not isinstance(bank, dict):
            raise EngineError(
                "invalid", "parameter_missing", 'bankAccount: {"token": "ba_…"}.', "bankAccount"
            )
        created = engine.create_payout(
            call.tx,
            provider=self.name,
            amount=value,
            currency=currency,
            destination=text(bank, "token", "bankAccount."),
            attempt=text(call.params, "reference"),
            metadata=metadata_of(call.params),
            now=call.now,
        )
        return json_response(200, payout_details(created))

    def retrieve_payout(self, engine: Engine, call: Call) -> Response:
        return json_response(
            200, payout_details(engine.get_payout(call.tx, self.name, call.args[0], call.now))
        )

    def lookup(self, kind: Kind) -> Handler:
        """GET …?reference=: the objects created with that `reference` (Moneta's attempt id)."""

        def handler(engine: Engine, call: Call) -> Response:
            reference = text(call.params, "reference")
            found = engine.find(
                call.tx,
                provider=self.name,
                kind=kind,
                now=call.now,
                attempt=reference,
            )
            return json_response(200, {"data": [self.render(obj) for obj in found]})

        return handler

    def render(self, obj: Obj) -> dict[str, Any]:
        if isinstance(obj, Payment):
            return payment_details(obj)
        if isinstance(obj, Refund):
            return refund_details(obj, self.config.adyen_merchant_account)
        return payout_details(obj)

    def settlement_report(self, engine: Engine, call: Call) -> Response:
        return report_csv(engine, call, self.name)


def hmac_signature(item: dict[str, Any], hex_key: str) -> str:
    """Base64 HMAC-SHA256, keyed with the hex-decoded key, of pspReference,
    originalReference, merchantAccountCode, merchantReference, value, currency, eventCode,
    success joined with ':'."""
    signed = ":".join(
        [
            *(str(item[name]) for name in HMAC_FIELDS),
            str(item["amount"]["value"]),
            item["amount"]["currency"],
            item["eventCode"],
            item["success"],
        ]
    )
    digest = hmac.new(bytes.fromhex(hex_key), signed.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def payment_details(payment: Payment) -> dict[str, Any]:
    details: dict[str, Any] = {
        "pspReference": payment.id,
        "resultCode": {"processing": "Received", "declined": "Refused"}.get(
            payment.status, "Authorised"
        ),
        "merchantReference": payment.attempt,
        "amount": amount_of(payment),
        "status": STATUS[payment.status],
        "amountCapturable": amount_of(payment, payment.amount_capturable),
        "amountCaptured": amount_of(payment, payment.amount_received),
        "amountRefunded": amount_of(payment, payment.amount_refunded),
        "paymentMethod": payment.payment_method,
        "metadata": payment.metadata,
        "creationDate": iso(payment.created),
    }
    if payment.decline_reason:
        details["refusalReasonCode"], details["refusalReason"] = REFUSALS[payment.decline_reason]
    return details


def modification(mod: Modification, payment: Payment, account: str) -> dict[str, Any]:
    return {
        "pspReference": mod.id,
        "paymentPspReference": payment.id,
        "status": "received",
        "amount": amount_of(payment, mod.amount),
        "reference": mod.reference,
        "merchantAccount": account,
    }


def refund_details(obj: Refund, account: str) -> dict[str, Any]:
    return {
        "pspReference": obj.id,
        "paymentPspReference": obj.payment_id,
        "status": REFUND_STATUS[obj.status],
        "amount": amount_of(obj),
        "reference": obj.attempt,
        "merchantAccount": account,
        "metadata": obj.metadata,
        "creationDate": iso(obj.created),
    }


def payout_details(obj: Payout) -> dict[str, Any]:
    return {
        "pspReference": obj.id,
        "resultCode": "Received",
        "status": PAYOUT_STATUS[obj.status],
        "amount": amount_of(obj),
        "merchantReference": obj.attempt,
        "bankAccount": {"token": obj.destination},
        "metadata": obj.metadata,
        "creationDate": iso(obj.created),
    }


def iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def text(params: dict[str, Any], name: str, where: str = "") -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value or len(value) > 255:
        raise EngineError(
            "invalid",
            "parameter_missing",
            f"{where}{name}: a string (1 to 255 characters).",
            where + name,
        )
    return value


def optional_text(params: dict[str, Any], name: str) -> str:
    return text(params, name) if name in params else ""


def amount(params: dict[str, Any]) -> tuple[int, str]:
    value = params.get("amount")
    if (
        not isinstance(value, dict)
        or type(value.get("value")) is not int
        or not isinstance(value.get("currency"), str)
        or not re.fullmatch(r"[A-Z]{3}", value["currency"])
    ):
        raise EngineError(
            "invalid",
            "parameter_invalid",
            'amount: {"value": <integer, minor units>, "currency": "EUR"}.',
            "amount",
        )
    return value["value"], value["currency"]


def metadata_of(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(value, str) for value in metadata.values()
    ):
        raise EngineError(
            "invalid", "parameter_invalid", "metadata: an object of strings.", "metadata"
        )
    return metadata
