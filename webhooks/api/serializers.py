"""Input serializers validate; output serializers declare the shape for the schema and
delegate to `webhooks.representations`."""

from typing import Any

from rest_framework import serializers

from core.api.fields import MetadataField, StrictSerializer, TextField
from core.api.schema import ObjectTypeField
from webhooks.addresses import URL_MAX_LENGTH
from webhooks.models import WebhookDeliveryStatus, WebhookEndpointStatus
from webhooks.representations import webhook_delivery_data, webhook_endpoint_data
from webhooks.services import ENABLED_EVENTS_MAX


class WebhookEndpointInput(StrictSerializer):
    url = TextField(
        max_length=URL_MAX_LENGTH,
        help_text="An https URL of a host with public addresses only; no credentials in it.",
    )
    enabled_events = serializers.ListField(
        child=TextField(max_length=64),
        min_length=1,
        max_length=ENABLED_EVENTS_MAX,
        help_text='Event types to send, e.g. `["payment.succeeded"]`, or `["*"]` for all.',
    )
    description = TextField(required=False, max_length=200)
    metadata = MetadataField()


class WebhookEndpointRotateSecretInput(StrictSerializer):
    """No fields: a new secret is made."""


class WebhookDeliveryRetryInput(StrictSerializer):
    """No fields: the delivery is sent again as it is."""


class WebhookEndpointOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("webhook_endpoint")
    url = serializers.CharField()
    enabled_events = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=WebhookEndpointStatus.values)
    disabled_reason = serializers.CharField(
        allow_null=True,
        help_text="Why it is disabled: `gone` (it answered 410), `failing` (a whole retry "
        "schedule failed), or null.",
    )
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return webhook_endpoint_data(instance)


class WebhookEndpointWithSecretOutput(WebhookEndpointOutput):
    secret = serializers.CharField(
        help_text="`whsec_…`: the key of the signatures, shown only in this response."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        endpoint, secret = instance
        return {**webhook_endpoint_data(endpoint), "secret": secret}


class WebhookEndpointDeletedOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("webhook_endpoint")
    deleted = serializers.BooleanField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {"id": instance.public_id, "object": "webhook_endpoint", "deleted": True}


class WebhookAttemptOutput(serializers.Serializer):
    number = serializers.IntegerField()
    succeeded = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField()
    response_body = serializers.CharField(help_text="The first 4 KiB of the answer.")
    error = serializers.CharField(allow_null=True)
    created = serializers.DateTimeField()


class WebhookDeliveryOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("webhook_delivery")
    endpoint = serializers.CharField()
    event = serializers.CharField(help_text="The event's id, also the `webhook-id` header.")
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=WebhookDeliveryStatus.values)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    created = serializers.DateTimeField()
    attempt_log = WebhookAttemptOutput(many=True, help_text="Every attempt, oldest first.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        attempts = sorted(instance.attempt_log.all(), key=lambda attempt: attempt.number)
        return webhook_delivery_data(instance, attempts)
