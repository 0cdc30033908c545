from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from ledger.models import LedgerEntry, LedgerTransaction, ReconciliationRun


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ("account", "amount", "currency", "balance_after", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "kind", "description", "reverses", "created_at")
    list_filter = ("kind",)
    search_fields = ("public_id", "description")
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "transaction",
        "account",
        "amount",
        "currency",
        "balance_after",
        "created_at",
    )
    list_filter = ("currency",)
    search_fields = ("account__public_id", "transaction__public_id")
    list_select_related = ("transaction", "account")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "status", "started_at", "finished_at")
    list_filter = ("status",)
