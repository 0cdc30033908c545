from typing import Any

from rest_framework import serializers

from audit.models import Event


class EventOutput(serializers.Serializer):
    # Declared in get_fields: a class attribute named `data` would hide Serializer.data.
    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "id": serializers.CharField(),
            "object": serializers.CharField(),
            "type": serializers.CharField(),
            "created": serializers.DateTimeField(),
            "data": serializers.DictField(help_text='{"object": the object as it was then}'),
        }

    def to_representation(self, instance: Event) -> dict[str, Any]:
        return {
            "id": instance.public_id,
            "object": "event",
            "type": instance.type,
            "created": instance.created_at,
            "data": instance.data,
        }
