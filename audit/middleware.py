"""Binds the request's id, client address and user agent to every audit row it writes."""

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit import context
from audit.context import ActorType

REQUEST_ID_HEADER = "X-Request-Id"
_MAX_REQUEST_ID_LENGTH = 200


def _request_id(request: HttpRequest) -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    if incoming and len(incoming) <= _MAX_REQUEST_ID_LENGTH and incoming.isprintable():
        return incoming
    return f"req_{uuid.uuid4().hex}"


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id(request)
        user = getattr(request, "user", None)
        is_staff = bool(user is not None and user.is_authenticated)
        with context.bind(
            actor_type=ActorType.STAFF if is_staff else ActorType.SYSTEM,
            actor=user.get_username() if is_staff and user is not None else "",
            request_id=request_id,
            ip_address=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("User-Agent", "")[:500],
        ):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
