"""Response headers that no library of ours sets: no caching of the API's answers, and a
Content-Security-Policy on the HTML pages (the admin and the API docs)."""

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

API_PATH_PREFIX = "/api/"

# Scripts, styles, fonts, images and the schema only from the site itself: a page can run
# no script from elsewhere, nor inline script. Inline styles stay allowed: Redoc
# (styled-components) and the admin's templates write them. Redoc's search runs in a worker
# it makes from a blob: URL.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_Handler = Callable[[HttpRequest], HttpResponseBase]


class ApiNoStoreMiddleware:
    """`Cache-Control: no-store` on every API response: they carry balances and personal
    data, which no browser, proxy or CDN may keep (docs/api.md)."""

    def __init__(self, get_response: _Handler):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.path_info.startswith(API_PATH_PREFIX):
            response["Cache-Control"] = "no-store"
        return response


class ContentSecurityPolicyMiddleware:
    """CONTENT_SECURITY_POLICY on every HTML response (the admin, /api/v1/docs/, error
    pages); JSON and static files need none. A fixed header, so a few lines here rather
    than django-csp (docs/operations.md)."""

    def __init__(self, get_response: _Handler):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html"):
            response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
