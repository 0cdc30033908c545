"""Provider webhooks as the providers send them, signed with the simulator's own signing
code (the outside world's signature, not the adapters'): for the webhook benchmark and the
tests of the endpoint."""

from __future__ import annotations

import datetime
import json
import secrets
import time
from typing import Any

from django.conf import settings

from simulator.adyen_api import hmac_signature
from simulator.config import SimulatorConfig
from simulator.stripe_api import StripeFormat


def _config() -> SimulatorConfig:
    """The simulator's settings as this process's adapters expect them."""
    return SimulatorConfig(
        stripe_webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
        adyen_hmac_key=settings.ADYEN_HMAC_KEY,
        adyen_merchant_account=settings.ADYEN_MERCHANT_ACCOUNT,
    )


def stripe_event_body(
    *,
    reference: str,
    status: str = "succeeded",
    amount: int = 2_500,
    currency: str = "usd",
    attempt: str = "",
    event_type: str = "",
    event_id: str = "",
    created: float | None = None,
) -> bytes:
    """A Stripe Event about a PaymentIntent, shaped as the simulator sends it."""
    captured = amount if status == "succeeded" else 0
    intent: dict[str, Any] = {
        "id": reference,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": amount if status == "requires_capture" else 0,
        "amount_received": captured,
        "currency": currency,
        "status": status,
        "metadata": {"moneta_attempt": attempt} if attempt else {},
        "livemode": False,
    }
    return json.dumps(
        {
            "id": event_id or "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time() if created is None else created),
            "livemode": False,
            "type": event_type or f"payment_intent.{status}",
            "data": {"object": intent},
        }
    ).encode()


def stripe_signature(body: bytes, *, at: float | None = None, secret: str = "") -> dict[str, str]:
    """The Stripe-Signature header of `body`, signed at `at` (now)."""
    config = _config()
    if secret:
        config = SimulatorConfig(stripe_webhook_secret=secret)
    return StripeFormat(config).sign(body, time.time() if at is None else at)


def adyen_notification_body(
    *,
    psp_reference: str,
    event_code: str = "AUTHORISATION",
    success: bool = True,
    amount: int = 2_500,
    currency: str = "USD",
    attempt: str = "",
    original_reference: str = "",
    at: float | None = None,
) -> bytes:
    """An Adyen notification of one item, its HMAC in the item, as the simulator sends it."""
    config = _config()
    item: dict[str, Any] = {
        "eventCode": event_code,
        "success": "true" if success else "false",
        "pspReference": psp_reference,
        "originalReference": original_reference,
        "merchantReference": attempt,
        "merchantAccountCode": config.adyen_merchant_account,
        "amount": {"value": amount, "currency": currency},
        "eventDate": datetime.datetime.fromtimestamp(
            time.time() if at is None else at, datetime.UTC
        ).isoformat(),
    }
    item["additionalData"] = {"hmacSignature": hmac_signature(item, config.adyen_hmac_key)}
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    ).encode()
