"""Stripe's wire format (a subset): form-encoded bodies, Bearer keys, Stripe's objects,
error objects and webhook signatures, translated to and from the engine."""

import hashlib
import hmac
import json
import re
import secrets
import urllib.parse
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

# The engine's decline reasons as Stripe names them: (code, decline_code, message).
DECLINES = {
    "card_declined": ("card_declined", "generic_decline", "Your card was declined."),
    "insufficient_funds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "expired_card": ("expired_card", "expired_card", "Your card has expired."),
    "fraudulent": ("card_declined", "fraudulent", "Your card was declined."),
}
PI_STATUS = {"declined": "requires_payment_method"}
ID_PREFIXES = {
    "payment": "pi_",
    "refund": "re_",
    "payout": "po_",
    "capture": "cap_",
    "cancel": "can_",
}
SEARCH = re.compile(r"""\s*metadata\[(['"])(\w+)\1\]\s*:\s*(['"])([^'"]+)\3\s*""")

CREATE_PARAMS = {
    "amount",
    "currency",
    "payment_method",
    "confirm",
    "capture_method",
    "metadata",
    "description",
    "expand",
}
CAPTURE_PARAMS = {"amount_to_capture", "expand"}
CANCEL_PARAMS = {"cancellation_reason", "expand"}
REFUND_PARAMS = {"payment_intent", "charge", "amount", "metadata", "reason", "expand"}
PAYOUT_PARAMS = {"amount", "currency", "destination", "metadata", "description", "expand"}


def stripe_error(status: int, body: dict[str, Any], **kwargs: Any) -> Response:
    response = json_response(status, {"error": body}, **kwargs)
    response.store = False
    return response


class StripeFormat(WireFormat):
    name = "stripe"
    prefix = "/v1/"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        route = re.compile
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", route(r"/v1/payment_intents"), self.create_payment_intent),
            ("GET", route(r"/v1/payment_intents/search"), self.search("payment")),
            ("GET", route(r"/v1/payment_intents/(\w+)"), self.retrieve_payment_intent),
            ("POST", route(r"/v1/payment_intents/(\w+)/capture"), self.capture),
            ("POST", route(r"/v1/payment_intents/(\w+)/cancel"), self.cancel),
            ("POST", route(r"/v1/refunds"), self.create_refund),
            ("GET", route(r"/v1/refunds/search"), self.search("refund")),
            ("GET", route(r"/v1/refunds/(\w+)"), self.retrieve_refund),
            ("POST", route(r"/v1/payouts"), self.create_payout),
            ("GET", route(r"/v1/payouts/search"), self.search("payout")),
            ("GET", route(r"/v1/payouts/(\w+)"), self.retrieve_payout),
            ("GET", route(r"/v1/settlement_report"), self.settlement_report),
        ]

    def new_id(self, kind: str) -> str:
        return ID_PREFIXES[kind] + secrets.token_hex(12)

    # The pipeline's hooks

    def authenticate(self, request: Request) -> Response | None:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            message = "You did not provide an API key. Provide it as a Bearer token."
        elif not hmac.compare_digest(authorization[7:], self.config.stripe_api_key):
            message = "Invalid API Key provided."
        else:
            return None
        return stripe_error(
            401,
            {"type": "invalid_request_error", "message": message},
            headers=[("Stripe-Should-Retry", "false")],
        )

    def parse(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if request.body and content_type != "application/x-www-form-urlencoded":
            raise EngineError(
                "invalid", "parameter_invalid", "Send the body form-encoded (Stripe's format)."
            )
        try:
            pairs = urllib.parse.parse_qsl(
                request.body.decode(), keep_blank_values=True, strict_parsing=bool(request.body)
            )
        except (UnicodeDecodeError, ValueError):
            raise EngineError(
                "invalid", "parameter_invalid", "The body is not form-encoded."
            ) from None
        params: dict[str, Any] = {}
        for name, value in pairs:
            base, _, rest = name.partition("[")
            if not rest:
                params[name] = value
            elif rest == "]" or rest[:-1].isdigit():  # expand[]=… / expand[0]=…
                params.setdefault(base, []).append(value)
            else:  # metadata[key]=…
                params.setdefault(base, {})[rest.rstrip("]")] = value
        return params

    def error(self, error: EngineError) -> Response:
        if error.kind == "flaky":
            return stripe_error(
                500,
                {"type": "api_error", "message": error.message},
                headers=[("Stripe-Should-Retry", "true")],
            )
        code = "payment_intent_unexpected_state" if error.code == "unexpected_state" else error.code
        body = {"type": "invalid_request_error", "code": code, "message": error.message}
        if error.param:
            body["param"] = error.param
        return stripe_error(
            404 if error.kind == "missing" else 400,
            body,
            headers=[("Stripe-Should-Retry", "false")],
        )

    def idempotency_mismatch(self) -> Response:
        return stripe_error(
            400,
            {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same"
                " parameters they were first used with.",
            },
            headers=[("Stripe-Should-Retry", "false")],
        )

    def unavailable(self) -> Response:
        return stripe_error(
            503,
            {"type": "api_error", "message": "The service is unavailable (simulator fault)."},
            headers=[("Stripe-Should-Retry", "true")],
        )

    def rate_limited(self, retry_after: int) -> Response:
        return stripe_error(
            429,
            {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests (simulator fault).",
            },
            headers=[("Stripe-Should-Retry", "true"), ("Retry-After", str(retry_after))],
        )

    def webhook(self, event: str, obj: Obj, mod: Modification | None, now: float) -> bytes | None:
        if isinstance(obj, Payment):
            if event != "payment.settled":
                return None  # captures and cancels are answered at once
            type = (
                "payment_intent.succeeded"
                if obj.status == "succeeded"
                else "payment_intent.amount_capturable_updated"
            )
            data = payment_intent(obj)
        elif isinstance(obj, Refund):
            type, data = "refund.updated", refund(obj)
        else:
            type, data = f"payout.{obj.status}", payout(obj)
        return json.dumps(
            {
                "id": "evt_" + secrets.token_hex(12),
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(now),
                "livemode": False,
                "pending_webhooks": 1,
                "type": type,
                "data": {"object": data},
                "request": {"id": None, "idempotency_key": None},
            }
        ).encode()

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        timestamp = str(int(now))
        signature = hmac.new(
            self.config.stripe_webhook_secret.encode(),
            timestamp.encode() + b"." + body,
            hashlib.sha256,
        ).hexdigest()
        return {"Stripe-Signature": f"t={timestamp},v1={signature}"}

    # Routes

    def create_payment_intent(self, engine: Engine, call: Call) -> Response:
        params = call.params
        check_known(params, CREATE_PARAMS)
        if params.get("confirm") != "true":
            raise EngineError(
                "invalid",
                "parameter_invalid",
                "The simulator creates PaymentIntents confirmed: send confirm=true.",
                "confirm",
            )
        capture_method = params.get("capture_method", "automatic")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise EngineError(
                "invalid",
                "parameter_invalid",
                "capture_method: automatic or manual.",
                "capture_method",
            )
        metadata = metadata_of(params)
        payment, withhold = engine.create_payment(
            call.tx,
            provider=self.name,
            idempotency_key=call.idempotency_key,
            amount=integer(params, "amount"),
            currency=currency(params),
            payment_method=string(params, "payment_method"),
            capture=capture_method != "manual",
            attempt=metadata.get("moneta_attempt", ""),
            metadata=metadata,
            now=call.now,
        )
        body = payment_intent(payment)
        if payment.status == "declined":
            response = json_response(
                402,
                {"error": {**body["last_payment_error"], "payment_intent": body}},
                headers=[("Stripe-Should-Retry", "false")],
            )
        else:
            response = json_response(200, body)
        if withhold:
            response.hangup = "timeout"
        return response

    def retrieve_payment_intent(self, engine: Engine, call: Call) -> Response:
        return json_response(
            200, payment_intent(engine.get_payment(call.tx, self.name, call.args[0], call.now))
        )

    def capture(self, engine: Engine, call: Call) -> Response:
        check_known(call.params, CAPTURE_PARAMS)
        amount = (
            integer(call.params, "amount_to_capture")
            if "amount_to_capture" in call.params
            else None
        )
        payment, _ = engine.capture(
            call.tx,
            provider=self.name,
            payment_id=call.args[0],
            amount=amount,
            currency=None,
            reference="",
            now=call.now,
        )
        return json_response(200, payment_intent(payment))

    def cancel(self, engine: Engine, call: Call) -> Response:
        check_known(call.params, CANCEL_PARAMS)
        payment, _ = engine.cancel(
            call.tx, provider=self.name, payment_id=call.args[0], reference="", now=call.now
        )
        return json_response(200, payment_intent(payment))

    def create_refund(self, engine: Engine, call: Call) -> Response:
        params = call.params
        check_known(params, REFUND_PARAMS)
        if "payment_intent" in params:
            payment_id = string(params, "payment_intent")
        elif str(params.get("charge", "")).startswith("ch_"):
            payment_id = "pi_" + params["charge"][3:]
        else:
            raise EngineError(
                "invalid",
                "parameter_missing",
                "Missing required param: payment_intent.",
                "payment_intent",
            )
        metadata = metadata_of(params)
        created = engine.create_refund(
            call.tx,
            provider=self.name,
            payment_id=payment_id,
            amount=integer(params, "amount") if "amount" in params else None,
            currency=None,
            attempt=metadata.get("moneta_attempt", ""),
            metadata=metadata,
            now=call.now,
        )
        return json_response(200, refund(created))

    def retrieve_refund(self, engine: Engine, call: Call) -> Response:
        return json_response(
            200, refund(engine.get_refund(call.tx, self.name, call.args[0], call.now))
        )

    def create_payout(self, engine: Engine, call: Call) -> Response:
        params = call.params
        check_known(params, PAYOUT_PARAMS)
        metadata = metadata_of(params)
        created = engine.create_payout(
            call.tx,
            provider=self.name,
            amount=integer(params, "amount"),
            currency=currency(params),
            destination=string(params, "destination"),
            attempt=metadata.get("moneta_attempt", ""),
            metadata=metadata,
            now=call.now,
        )
        return json_response(200, payout(created))

    def retrieve_payout(self, engine: Engine, call: Call) -> Response:
        return json_response(
            200, payout(engine.get_payout(call.tx, self.name, call.args[0], call.now))
        )

    def search(self, kind: Kind) -> Handler:
        path = {"payment": "payment_intents", "refund": "refunds", "payout": "payouts"}[kind]

        def handler(engine: Engine, call: Call) -> Response:
            match = SEARCH.fullmatch(call.params.get("query", ""))
            if match is None:
                raise EngineError(
                    "invalid",
                    "parameter_invalid",
                    "The simulator searches by one metadata key: query=metadata['key']:'value'.",
                    "query",
                )
            key, value = match.group(2), match.group(4)
            found = engine.find(
                call.tx,
                provider=self.name,
                kind=kind,
                now=call.now,
                attempt=value if key == "moneta_attempt" else None,
                metadata=None if key == "moneta_attempt" else (key, value),
            )
            return json_response(
                200,
                {
                    "object": "search_result",
                    "url": f"/v1/{path}/search",
                    "has_more": False,
                    "next_page": None,
                    "data": [render(obj) for obj in found],
                },
            )

        return handler

    def settlement_report(self, engine: Engine, call: Call) -> Response:
        return report_csv(engine, call, self.name)


def render(obj: Obj) -> dict[str, Any]:
    if isinstance(obj, Payment):
        return payment_intent(obj)
    return refund(obj) if isinstance(obj, Refund) else payout(obj)


def payment_intent(payment: Payment) -> dict[str, Any]:
    error = None
    if payment.decline_reason:
        code, decline_code, message = DECLINES[payment.decline_reason]
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "charge": "ch_" + payment.id[3:],
        }
    return {
        "id": payment.id,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_capturable": payment.amount_capturable,
        "amount_received": payment.amount_received,
        "currency": payment.currency.lower(),
        "status": PI_STATUS.get(payment.status, payment.status),
        "capture_method": payment.capture_method,
        "confirmation_method": "automatic",
        "payment_method": payment.payment_method,
        "latest_charge": "ch_" + payment.id[3:],
        "last_payment_error": error,
        "canceled_at": int(payment.canceled_at) if payment.canceled_at else None,
        "metadata": payment.metadata,
        "created": int(payment.created),
        "livemode": False,
    }


def refund(obj: Refund) -> dict[str, Any]:
    return {
        "id": obj.id,
        "object": "refund",
        "amount": obj.amount,
        "currency": obj.currency.lower(),
        "payment_intent": obj.payment_id,
        "charge": "ch_" + obj.payment_id[3:],
        "status": obj.status,
        "failure_reason": "unknown" if obj.status == "failed" else None,
        "metadata": obj.metadata,
        "created": int(obj.created),
    }


def payout(obj: Payout) -> dict[str, Any]:
    failed = obj.status == "failed"
    return {
        "id": obj.id,
        "object": "payout",
        "amount": obj.amount,
        "currency": obj.currency.lower(),
        "destination": obj.destination,
        "status": obj.status,
        "failure_code": "account_closed" if failed else None,
        "failure_message": "The bank account has been closed." if failed else None,
        "arrival_date": int(obj.settle_at),
        "metadata": obj.metadata,
        "created": int(obj.created),
        "livemode": False,
    }


def check_known(params: dict[str, Any], known: set[str]) -> None:
    for name in params:
        if name not in known:
            raise EngineError(
                "invalid", "parameter_unknown", f"Received unknown parameter: {name}", name
            )


def string(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise EngineError("invalid", "parameter_missing", f"Missing required param: {name}.", name)
    if not isinstance(value, str):
        raise EngineError("invalid", "parameter_invalid", f"Invalid {name}.", name)
    return value


def integer(params: dict[str, Any], name: str) -> int:
    value = string(params, name)
    if not re.fullmatch(r"-?[0-9]{1,12}", value):
        raise EngineError("invalid", "parameter_invalid_integer", f"Invalid integer: {value}", name)
    return int(value)


def currency(params: dict[str, Any]) -> str:
    value = string(params, "currency")
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise EngineError("invalid", "parameter_invalid", f"Invalid currency: {value}", "currency")
    return value.upper()


def metadata_of(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    if not isinstance(metadata, dict):
        raise EngineError("invalid", "parameter_invalid", "Invalid metadata.", "metadata")
    return metadata
