"""The admin's middleware, skipped on the paths only machines call.

The API (bearer API keys, DRF, JSON), the probes and /metrics use no sessions, Django
users, messages or simple-history's request, yet Django's middleware for them runs on
every request: it builds a session store and a message store, and reading the lazy
`request.user` (audit.middleware.AuditContextMiddleware does) marks the session accessed,
which costs CPU (and, with a session cookie, two queries). These subclasses hand machine
paths straight to the next layer. They stay subclasses of Django's classes, so the admin's
system checks (admin.E408-E410) still find them in MIDDLEWARE.

What the API still gets without them: AuditContextMiddleware sees no `request.user`, so
the request starts as the system with no actor until the API key's authentication rebinds
it (core.api.authentication), and simple-history gets no request, so history rows written
by the API have no history_user, which core.history.history_user gives API keys anyway.
"""

from collections.abc import Awaitable, Callable

from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from simple_history.middleware import HistoryRequestMiddleware as _history_request_middleware

# The API, the probes and the providers' webhooks (config/urls.py); /metrics
# (django-prometheus) only exactly, so that a path merely starting with these letters keeps
# the whole stack.
MACHINE_PATH_PREFIXES = ("/api/", "/health/", "/webhooks/")
METRICS_PATH = "/metrics"

_Response = HttpResponseBase | Awaitable[HttpResponseBase]


def is_machine_path(request: HttpRequest) -> bool:
    """Whether the request is for the API, a probe or /metrics: by path_info, which is what
    the URLconf resolves (request.path also carries the script prefix, if any)."""
    path = request.path_info
    return path.startswith(MACHINE_PATH_PREFIXES) or path == METRICS_PATH


class _SkippedOnMachinePaths:
    """Mixed in before one of Django's middleware classes (MiddlewareMixin)."""

    def __call__(self, request: HttpRequest) -> _Response:
        if is_machine_path(request):
            return self.get_response(request)  # type: ignore[attr-defined]
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(_SkippedOnMachinePaths, _SessionMiddleware):
    pass


class AuthenticationMiddleware(_SkippedOnMachinePaths, _AuthenticationMiddleware):
    pass


class MessageMiddleware(_SkippedOnMachinePaths, _MessageMiddleware):
    pass


class HistoryRequestMiddleware:
    """simple-history's middleware (it hands the request to core.history.history_user,
    which names the staff user of admin changes), except on machine paths."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response
        self.with_request = _history_request_middleware(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if is_machine_path(request):
            return self.get_response(request)
        response: HttpResponseBase = self.with_request(request)
        return response
