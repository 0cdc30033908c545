"""Binds the request's ids (ours and the client's), client address and user agent to every
audit row it writes."""

import functools
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit import context
from audit.context import ActorType, audit_log_pending, audit_log_write_pending
from core.http import client_ip

REQUEST_ID_HEADER = "X-Request-Id"
# The client's own X-Request-Id, echoed under this name beside ours.
CLIENT_REQUEST_ID_HEADER = "X-Client-Request-Id"
# Where RequestIdMiddleware leaves the ids it settled on, for the middleware inside it and
# for log records that carry the request (audit.logging.RequestContextFilter).
REQUEST_ID_META = "moneta.request_id"
CLIENT_REQUEST_ID_META = "moneta.client_request_id"
_MAX_CLIENT_REQUEST_ID_LENGTH = 200
_CLIENT_REQUEST_ID_META_KEY = "HTTP_X_REQUEST_ID"


def _request_ids(request: HttpRequest) -> tuple[str, str]:
    """(ours, the client's): a new `req_<32 hex>` for every request, and the client's
    X-Request-Id when it is 1 to 200 printable ASCII characters (else "": not kept)."""
    settled = request.META.get(REQUEST_ID_META)
    if settled:
        return str(settled), str(request.META.get(CLIENT_REQUEST_ID_META, ""))
    # From META: request.headers would build a dict of every header for this one.
    incoming = request.META.get(_CLIENT_REQUEST_ID_META_KEY, "")
    usable = (
        len(incoming) <= _MAX_CLIENT_REQUEST_ID_LENGTH
        and incoming.isascii()
        and incoming.isprintable()
    )
    return f"req_{uuid.uuid4().hex}", incoming if usable else ""


def _send_request_ids(response: HttpResponse, request_id: str, client_request_id: str) -> None:
    response[REQUEST_ID_HEADER] = request_id
    if client_request_id:
        response[CLIENT_REQUEST_ID_HEADER] = client_request_id


def _printable(text: str) -> str:
    """Client-supplied text without the control characters PostgreSQL or a log would choke on."""
    return "".join(char for char in text if char.isprintable())


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id, client_request_id = _request_ids(request)
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
            client_request_id=client_request_id,
            ip_address=str(ip) if (ip := client_ip(request)) is not None else None,
            user_agent=_printable(request.META.get("HTTP_USER_AGENT", ""))[:500],
        ):
            response = self.get_response(request)
        _send_request_ids(response, request_id, client_request_id)
        pending = audit_log_pending(request)
        if pending:
            # Rows noted with `audit_log_after_response`: written once the body is sent
            # (the server calls response.close(), which runs these closers, before the
            # request_finished signal), outside the request's rolled-back transaction.
            closer = functools.partial(audit_log_write_pending, pending)
            response._resource_closers.append(closer)  # type: ignore[attr-defined]
        return response


class RequestIdMiddleware:
    """Outermost but for the metrics and the access log: settles the request's ids once
    (ours, always new, and the client's X-Request-Id when usable) and puts them on every
    response and log line, also those made by middleware that runs before
    AuditContextMiddleware (a redirect, a refused Host header). The client's id is never
    ours: a client could reuse one, or choose another client's."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id, client_request_id = _request_ids(request)
        request.META[REQUEST_ID_META] = request_id
        request.META[CLIENT_REQUEST_ID_META] = client_request_id
        with context.bind(request_id=request_id, client_request_id=client_request_id):
            response = self.get_response(request)
        _send_request_ids(response, request_id, client_request_id)
        return response
