"""The public shape of an event: the API's, and the body of a webhook delivery."""

from typing import Any

from audit.models import Event


def event_data(event: Event) -> dict[str, Any]:
    return {
        "id": event.public_id,
        "object": "event",
        "type": event.type,
        "created": event.created_at,
        "data": event.data,
    }
