from django.contrib import admin

from core.admin import ReadOnlyAdmin
from payments.models import Transfer


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    """Transfers are written once by `transfer_create`; the admin shows them."""

    list_display = (
        "public_id",
        "merchant",
        "source_account",
        "destination_account",
        "amount",
        "currency",
        "status",
        "failure_code",
        "created_at",
    )
    list_filter = ("status", "currency", "failure_code")
    search_fields = ("public_id", "source_account__public_id", "destination_account__public_id")
    list_select_related = ("merchant", "source_account", "destination_account")
    date_hierarchy = "created_at"
