from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from accounts.models import Account, Customer, Hold, Merchant
from core.admin import ReadOnlyAdmin


@admin.register(Merchant)
class MerchantAdmin(SimpleHistoryAdmin, ReadOnlyAdmin):
    list_display = ("name", "public_id", "created_at")
    search_fields = ("name", "public_id")


@admin.register(Customer)
class CustomerAdmin(SimpleHistoryAdmin, ReadOnlyAdmin):
    list_display = ("public_id", "name", "email", "merchant", "external_reference", "created_at")
    search_fields = ("public_id", "name", "email", "external_reference")
    list_filter = ("merchant",)


@admin.register(Account)
class AccountAdmin(SimpleHistoryAdmin, ReadOnlyAdmin):
    list_display = (
        "public_id",
        "merchant",
        "customer",
        "kind",
        "system_purpose",
        "currency",
        "status",
        "balance",
        "held",
        "created_at",
    )
    list_filter = ("kind", "status", "currency", "system_purpose")
    search_fields = ("public_id", "customer__name", "customer__email", "merchant__name")
    list_select_related = ("merchant", "customer")


@admin.register(Hold)
class HoldAdmin(SimpleHistoryAdmin, ReadOnlyAdmin):
    list_display = (
        "public_id",
        "account",
        "amount",
        "captured_amount",
        "status",
        "expires_at",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("public_id", "account__public_id")
    list_select_related = ("account",)
