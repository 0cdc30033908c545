"""Prometheus request metrics: the few that operators use, under django-prometheus's names.

django-prometheus's two middlewares update about twelve metrics on every request (three of
them histograms), which under uWSGI means as many writes to its shared metric files:
about 0.1 ms of CPU per request, a noticeable share of an API read. This middleware keeps
four of them (responses, latency, exceptions by type and by view), with the same names,
labels and buckets, so dashboards and alerts built on those keep working. The others are
not defined at all: /metrics shows no series that never move (docs/operations.md).
"""

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django_prometheus.conf import NAMESPACE, PROMETHEUS_LATENCY_BUCKETS
from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

# Defined once per process (at import), like django-prometheus's Metrics singleton: every
# test Client builds its own middleware chain, and a second registration would fail.
RESPONSES_BY_STATUS_VIEW_METHOD = Counter(
    "django_http_responses_total_by_status_view_method",
    "Count of responses by status, view, method.",
    ["status", "view", "method"],
    namespace=NAMESPACE,
)
LATENCY_BY_VIEW_METHOD = Histogram(
    "django_http_requests_latency_seconds_by_view_method",
    "Histogram of request processing time labelled by view.",
    ["view", "method"],
    buckets=PROMETHEUS_LATENCY_BUCKETS,
    namespace=NAMESPACE,
)
EXCEPTIONS_BY_TYPE = Counter(
    "django_http_exceptions_total_by_type",
    "Count of exceptions by object type.",
    ["type"],
    namespace=NAMESPACE,
)
EXCEPTIONS_BY_VIEW = Counter(
    "django_http_exceptions_total_by_view",
    "Count of exceptions by view.",
    ["view"],
    namespace=NAMESPACE,
)

UNNAMED_VIEW = "<unnamed view>"
INVALID_METHOD = "<invalid method>"
# Any other method is one label value, so that clients cannot invent new series.
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"}
)


def _view_name(request: HttpRequest) -> str:
    """The URL name of the view that answered; requests no route took have none."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.view_name:
        return UNNAMED_VIEW
    return str(match.view_name)


def _method(request: HttpRequest) -> str:
    method = request.method
    return method if method is not None and method in _METHODS else INVALID_METHOD


class PrometheusMiddleware:
    """The outermost middleware: counts each response by status, view and method and
    times the whole request (every other middleware included); process_exception counts
    the exceptions views raise, as django-prometheus does. Metrics never fail a request:
    when they cannot be written (the multiprocess directory gone or full) the request is
    answered anyway and the first failure is logged."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        start = time.perf_counter()
        response = self.get_response(request)
        duration = time.perf_counter() - start
        view = _view_name(request)
        method = _method(request)
        with _never_failing():
            RESPONSES_BY_STATUS_VIEW_METHOD.labels(str(response.status_code), view, method).inc()
            LATENCY_BY_VIEW_METHOD.labels(view, method).observe(duration)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        with _never_failing():
            EXCEPTIONS_BY_TYPE.labels(type(exception).__name__).inc()
            EXCEPTIONS_BY_VIEW.labels(_view_name(request)).inc()


_failure_logged = False


@contextlib.contextmanager
def _never_failing() -> Iterator[None]:
    global _failure_logged
    try:
        yield
    except Exception:
        if not _failure_logged:  # once per process: every request would fail the same way
            _failure_logged = True
            logger.exception("request metrics not recorded (PROMETHEUS_MULTIPROC_DIR?)")
