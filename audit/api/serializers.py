from typing import Any

from rest_framework import serializers

from audit.models import Event
from audit.representations import event_data
from core.api.schema import ObjectTypeField


class EventData(serializers.Serializer):
    object = serializers.DictField(
        help_text="The object as it was when the event happened, in its API shape."
    )


class EventOutput(serializers.Serializer):
    # Declared in get_fields: a class attribute named `data` would hide Serializer.data.
    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "id": serializers.CharField(),
            "object": ObjectTypeField("event"),
            "type": serializers.CharField(help_text="e.g. `transfer.succeeded`."),
            "created": serializers.DateTimeField(),
            "data": EventData(),
        }

    def to_representation(self, instance: Event) -> dict[str, Any]:
        return event_data(instance)
