from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.models import IdempotencyKey


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records nobody may change: the ledger, the audit trail, events."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = (
        "key",
        "merchant",
        "request_method",
        "request_path",
        "state",
        "response_status",
        "created_at",
    )
    list_filter = ("state", "response_status")
    search_fields = ("key", "merchant__name", "merchant__public_id")
    exclude = ("response_body",)
