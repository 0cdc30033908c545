from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import AuditLog, DeadLetter, Event
from audit.services import dead_letter_retry
from core.admin import ReadOnlyAdmin
from core.exceptions import DomainError


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


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    """Work that exhausted its retries; operators retry it once the cause is fixed."""

    list_display = ("created_at", "kind", "object_type", "object_id", "attempts", "status")
    list_filter = ("status", "kind")
    search_fields = ("object_id", "task_name", "last_error")
    date_hierarchy = "created_at"
    actions = ("retry_selected",)

    @admin.action(description="Retry the selected dead letters", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        retried = 0
        for dead_letter in queryset.order_by("pk"):
            try:
                dead_letter_retry(dead_letter=dead_letter)
            except DomainError as error:
                self.message_user(request, f"{dead_letter}: {error.message}", messages.WARNING)
                continue
            retried += 1
        self.message_user(request, f"{retried} dead letter(s) sent again.", messages.SUCCESS)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audit.change_deadletter")
