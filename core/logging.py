"""Structured logs: every record renders as one JSON object per line (settings.LOGGING),
with the request id and actor of the request, task or command that emitted it
(audit.logging.RequestContextFilter); and the access log."""

import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter, without the objects that some Django records carry
    as extras (the HttpRequest of django.request, the socket of django.server)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request", "server_time"])
        super().__init__(*args, **kwargs)


access_logger = logging.getLogger("moneta.access")
# Where authentication leaves the calling API key's public id and its merchant's, for the
# access log line (written after the request's audit context is gone).
API_KEY_META = "moneta.api_key"
MERCHANT_META = "moneta.merchant"


class AccessLogMiddleware:
    """One record per request on the `moneta.access` logger, with its request id, as
    the server's access log would have it (settings.ACCESS_LOG; the server logs none)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        start = time.perf_counter()
        response = self.get_response(request)
        meta = request.META
        access_logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "request": request,  # its ids, for audit.logging.RequestContextFilter
                "remote_addr": meta.get("REMOTE_ADDR", ""),
                "method": request.method,
                "path": request.path,
                "query": meta.get("QUERY_STRING", ""),
                "protocol": meta.get("SERVER_PROTOCOL", ""),
                "status": response.status_code,
                "response_bytes": (
                    None if response.streaming else len(response.content)  # type: ignore[attr-defined]
                ),
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                "referer": meta.get("HTTP_REFERER", ""),
                "user_agent": meta.get("HTTP_USER_AGENT", ""),
                "api_key": meta.get(API_KEY_META, ""),
                "merchant": meta.get(MERCHANT_META, ""),
            },
        )
        return response
