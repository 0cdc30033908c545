from typing import Any

import django_filters
from django.db.models import Prefetch
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from audit.api.filters import EventTypeFilter
from core.api.filters import CreatedFilterSet
from core.api.idempotency import idempotent
from core.api.views import MerchantScopedViewSet
from webhooks.api.serializers import (
    WebhookDeliveryOutput,
    WebhookDeliveryRetryInput,
    WebhookEndpointDeletedOutput,
    WebhookEndpointInput,
    WebhookEndpointOutput,
    WebhookEndpointRotateSecretInput,
    WebhookEndpointWithSecretOutput,
)
from webhooks.models import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointStatus,
)
from webhooks.services import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
)


class WebhookDeliveryFilter(CreatedFilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookDeliveryStatus.choices)
    event_type = EventTypeFilter(
        field_name="event__type",
        help_text="Only deliveries of events of this type, e.g. `payment.failed`, or of "
        "this family, e.g. `payment.*`.",
    )

    class Meta:
        model = WebhookDelivery
        fields: list[str] = []


class WebhookEndpointFilter(CreatedFilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookEndpointStatus.choices)

    class Meta:
        model = WebhookEndpoint
        fields: list[str] = []


_DELIVERY_FILTER_PARAMETERS = [
    OpenApiParameter(
        "status", enum=WebhookDeliveryStatus.values, description="Only deliveries in this status."
    ),
    OpenApiParameter(
        "event_type",
        description="Only deliveries of events of this type, e.g. `payment.failed`, or of "
        "this family, e.g. `payment.*`.",
    ),
    OpenApiParameter(
        "created_after",
        OpenApiTypes.DATETIME,
        description="Only deliveries created at or after this time (ISO 8601).",
    ),
    OpenApiParameter(
        "created_before",
        OpenApiTypes.DATETIME,
        description="Only deliveries created before this time (ISO 8601).",
    ),
]


def _deliveries() -> Any:
    return WebhookDelivery.objects.select_related("endpoint", "event").prefetch_related(
        Prefetch("attempt_log", queryset=WebhookDeliveryAttempt.objects.order_by("number"))
    )


class WebhookEndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet
):
    queryset = WebhookEndpoint.objects.filter(deleted_at__isnull=True)
    serializer_class = WebhookEndpointOutput
    filterset_class = WebhookEndpointFilter

    @idempotent
    @extend_schema(
        request=WebhookEndpointInput,
        responses={201: WebhookEndpointWithSecretOutput},
        description="Register a URL to receive your events, signed as Standard Webhooks "
        "says with the `secret` returned here, and only here.",
    )
    def create(self, request: Request) -> Response:
        data = WebhookEndpointInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        created = webhook_endpoint_create(merchant=self.merchant, **data.validated_data)
        return Response(
            WebhookEndpointWithSecretOutput(created).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        responses={200: WebhookEndpointDeletedOutput},
        description="Stop sending to this endpoint for good; deliveries still waiting fail.",
    )
    def destroy(self, request: Request, id: str) -> Response:
        endpoint = webhook_endpoint_delete(endpoint=self.get_object())
        return Response(WebhookEndpointDeletedOutput(endpoint).data)

    @idempotent
    @extend_schema(
        request=WebhookEndpointRotateSecretInput,
        responses={200: WebhookEndpointWithSecretOutput},
        description="A new secret, returned only here. The previous one keeps signing beside "
        "it (two signatures in `webhook-signature`) for 24 hours.",
    )
    @action(
        detail=True,
        methods=["post"],
        url_name="rotate_secret",  # one word after the basename, as the other routes'
        filterset_class=None,
        pagination_class=None,
    )
    def rotate_secret(self, request: Request, id: str) -> Response:
        endpoint = self.get_object()
        WebhookEndpointRotateSecretInput(data=request.data, context={"request": request}).is_valid(
            raise_exception=True
        )
        rotated = webhook_endpoint_rotate_secret(endpoint=endpoint)
        return Response(WebhookEndpointWithSecretOutput(rotated).data)

    @extend_schema(
        responses={200: WebhookDeliveryOutput(many=True)},
        parameters=_DELIVERY_FILTER_PARAMETERS,
        description="The endpoint's deliveries, newest first, each with its attempts.",
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def deliveries(self, request: Request, id: str) -> Response:
        endpoint = self.get_object()
        # Filtered here: the view's filter backend filters endpoints, not deliveries.
        filters = WebhookDeliveryFilter(
            request.query_params, queryset=_deliveries().filter(endpoint=endpoint)
        )
        if not filters.is_valid():
            raise translate_validation(filters.errors)
        page = self.paginate_queryset(filters.qs)
        assert page is not None  # noqa: S101 - lists are always paginated
        return self.get_paginated_response(WebhookDeliveryOutput(page, many=True).data)


class WebhookDeliveryViewSet(MerchantScopedViewSet):
    queryset = _deliveries()
    serializer_class = WebhookDeliveryOutput
    filterset_class = WebhookDeliveryFilter

    @idempotent
    @extend_schema(
        request=WebhookDeliveryRetryInput,
        responses={200: WebhookDeliveryOutput},
        description="Send the delivery again now (a replay too, when it succeeded), with the "
        "same `webhook-id`, on a fresh retry schedule. Refused (400 `endpoint_disabled`) "
        "while its endpoint is disabled.",
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def retry(self, request: Request, id: str) -> Response:
        delivery = self.get_object()
        WebhookDeliveryRetryInput(data=request.data, context={"request": request}).is_valid(
            raise_exception=True
        )
        delivery = webhook_delivery_retry(delivery=delivery)
        return Response(WebhookDeliveryOutput(_deliveries().get(pk=delivery.pk)).data)
