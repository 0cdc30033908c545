"""`POST /webhooks/providers/{provider}/`: a provider's own news (SPEC §4.2), outside
/api/v1: no API key, no DRF, no CSRF (a provider signs, it holds no cookie), no rate
limit. A plain Django view, because it must answer within milliseconds: cap the body,
have the adapter verify it, store each event once, answer; the processing runs in Celery
(payments.webhooks)."""

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.api.errors import error_body, error_response
from payments.providers.base import WebhookInvalid
from payments.providers.registry import PROVIDERS
from payments.webhooks import provider_webhook_receive

logger = logging.getLogger(__name__)

# What each provider expects back: Adyen wants the body `[accepted]`, or it sends again.
_ACCEPTED = {"adyen": b"[accepted]"}


def _too_large() -> JsonResponse:
    limit = settings.PROVIDER_WEBHOOK_MAX_BODY_BYTES
    return error_response(
        error_body("invalid_request_error", "body_too_large", f"The body exceeds {limit} bytes."),
        413,
    )


@csrf_exempt
@require_POST
def provider_webhook_view(request: HttpRequest, provider: str) -> HttpResponse:
    if provider not in PROVIDERS:
        return error_response(error_body("not_found", "resource_missing", "No such provider."), 404)
    limit = settings.PROVIDER_WEBHOOK_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    # The declared length first, then a bounded read: a body larger than the limit is
    # never read into memory (core.wsgi has refused a chunked or a short one already).
    if not (declared.isascii() and declared.isdigit()):
        return error_response(
            error_body(
                "invalid_request_error", "content_length_invalid", "Content-Length is invalid."
            ),
            400,
        )
    if int(declared) > limit:
        logger.warning(
            "provider webhook refused",
            extra={"provider": provider, "reason": "body too large", "length": int(declared)},
        )
        return _too_large()
    body = request.read(limit + 1)
    if len(body) > limit:
        return _too_large()
    try:
        received = provider_webhook_receive(provider=provider, body=body, headers=request.headers)
    except WebhookInvalid as error:
        logger.warning(
            "provider webhook refused", extra={"provider": provider, "reason": error.reason}
        )
        return error_response(
            error_body("invalid_request_error", "webhook_invalid", error.reason), 400
        )
    if provider in _ACCEPTED:
        return HttpResponse(_ACCEPTED[provider], content_type="text/plain")
    return JsonResponse({"received": len(received.stored), "duplicates": received.duplicates})
