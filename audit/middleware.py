"""Binds the request's id, client address and user agent to every audit row it writes."""

import functools
import ipaddress
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit import context
from audit.context import ActorType, audit_log_pending, audit_log_write_pending

REQUEST_ID_HEADER = "X-Request-Id"
# Where RequestIdMiddleware leaves the id it settled on, for the middleware inside it and
# for log records that carry the request (core.logging.RequestContextFilter).
REQUEST_ID_META = "moneta.request_id"
_MAX_REQUEST_ID_LENGTH = 200
_REQUEST_ID_META_KEY = "HTTP_X_REQUEST_ID"


def _request_id(request: HttpRequest) -> str:
    settled = request.META.get(REQUEST_ID_META)
    if settled:
        return str(settled)
    # From META: request.headers would build a dict of every header for this one.
    incoming = request.META.get(_REQUEST_ID_META_KEY, "")
    if incoming and len(incoming) <= _MAX_REQUEST_ID_LENGTH and incoming.isprintable():
        return incoming
    return f"req_{uuid.uuid4().hex}"


def _client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR when it is an IP address (behind a misconfigured proxy it can be a list)."""
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return None


def _printable(text: str) -> str:
    """Client-supplied text without the control characters PostgreSQL or a log would choke on."""
    return "".join(char for char in text if char.isprintable())


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id(request)
        user = getattr(request, "user", None)
        # Only staff act by name; anyone else (an anonymous visitor, a logged-in non-staff
        # user, an API caller before authentication) stays the system with no actor.
        is_staff = bool(
            user is not None and user.is_authenticated and getattr(user, "is_staff", False)
        )
        with context.bind(
            actor_type=ActorType.STAFF if is_staff else ActorType.SYSTEM,
            actor=user.get_username() if is_staff and user is not None else "",
            request_id=request_id,
            ip_address=_client_ip(request),
            user_agent=_printable(request.META.get("HTTP_USER_AGENT", ""))[:500],
        ):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        pending = audit_log_pending(request)
        if pending:
            # Rows noted with `audit_log_after_response`: written once the body is sent
            # (the server calls response.close(), which runs these closers, before the
            # request_finished signal), outside the request's rolled-back transaction.
            closer = functools.partial(audit_log_write_pending, pending)
            response._resource_closers.append(closer)  # type: ignore[attr-defined]
        return response


class RequestIdMiddleware:
    """Outermost but for the metrics and the access log: settles the request's id once (the
    client's X-Request-Id when usable) and puts it on every response and log line, also
    those made by middleware that runs before AuditContextMiddleware (a redirect, a refused
    Host header)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id(request)
        request.META[REQUEST_ID_META] = request_id
        with context.bind(request_id=request_id):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
