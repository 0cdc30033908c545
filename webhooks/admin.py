from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnlyAdmin
from core.exceptions import DomainError
from webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from webhooks.services import webhook_delivery_retry, webhook_endpoint_enable


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SimpleHistoryAdmin, ReadOnlyAdmin):
    """Read-only (its secrets never shown); a disabled endpoint is enabled again with the
    action, audited with the staff user."""

    list_display = (
        "public_id",
        "merchant",
        "url",
        "status",
        "disabled_reason",
        "created_at",
        "deleted_at",
    )
    list_filter = ("status", "disabled_reason")
    search_fields = ("public_id", "url", "merchant__name")
    list_select_related = ("merchant",)
    exclude = ("secret", "previous_secret")
    actions = ("enable_selected",)

    @admin.action(description="Enable the selected endpoints again", permissions=["enable"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        enabled = 0
        for endpoint in queryset.order_by("pk"):
            try:
                webhook_endpoint_enable(endpoint=endpoint)
            except DomainError as error:
                self.message_user(request, f"{endpoint}: {error.message}", messages.WARNING)
                continue
            enabled += 1
        self.message_user(request, f"{enabled} endpoint(s) enabled.", messages.SUCCESS)

    def has_enable_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_webhookendpoint")


class WebhookDeliveryAttemptInline(admin.TabularInline):
    model = WebhookDeliveryAttempt
    fields = (
        "number",
        "created_at",
        "succeeded",
        "status_code",
        "duration_ms",
        "error",
        "response_body",
    )
    readonly_fields = fields
    ordering = ("number",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Every event sent to every endpoint, with its attempts; staff retry deliveries (a
    replay too), audited with the staff user."""

    list_display = (
        "public_id",
        "endpoint",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", ("endpoint", admin.RelatedOnlyFieldListFilter))
    search_fields = ("public_id", "event__public_id", "event__object_id", "endpoint__public_id")
    list_select_related = ("endpoint", "event")
    date_hierarchy = "created_at"
    inlines = (WebhookDeliveryAttemptInline,)
    actions = ("retry_selected",)

    @admin.action(description="Retry the selected deliveries", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        retried = 0
        for delivery in queryset.order_by("pk"):
            try:
                webhook_delivery_retry(delivery=delivery)
            except DomainError as error:
                self.message_user(request, f"{delivery}: {error.message}", messages.WARNING)
                continue
            retried += 1
        self.message_user(request, f"{retried} delivery(ies) sent again.", messages.SUCCESS)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_webhookdelivery")
