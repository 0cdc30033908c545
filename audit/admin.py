from django.contrib import admin

from audit.models import AuditLog, Event
from core.admin import ReadOnlyAdmin


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "action",
        "object_type",
        "object_id",
        "actor_type",
        "actor",
        "request_id",
    )
    list_filter = ("actor_type", "object_type", "action")
    search_fields = ("object_id", "actor", "request_id", "action")
    date_hierarchy = "created_at"


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "type", "object_id", "merchant", "created_at")
    list_filter = ("type",)
    search_fields = ("public_id", "object_id")
    date_hierarchy = "created_at"
