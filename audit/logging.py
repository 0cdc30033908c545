"""The audit context on every log record (settings.LOGGING's `request_context` filter)."""

import logging

from audit.context import current_context
from audit.middleware import CLIENT_REQUEST_ID_META, REQUEST_ID_META


class RequestContextFilter(logging.Filter):
    """Adds `request_id`, `client_request_id`, `actor_type` and `actor` (audit.context) to
    every record; lets every record through. Put it on handlers, so that it sees every
    logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        request_id, client_request_id = context.request_id, context.client_request_id
        if not request_id:
            # django.request logs 4xx/5xx responses after the middleware (and its bound
            # context) has finished; the record still carries the request.
            meta = getattr(getattr(record, "request", None), "META", None)
            if isinstance(meta, dict):
                request_id = str(meta.get(REQUEST_ID_META) or "")
                client_request_id = str(meta.get(CLIENT_REQUEST_ID_META) or "")
        record.request_id = request_id
        record.client_request_id = client_request_id
        record.actor_type = context.actor_type
        record.actor = context.actor
        return True
