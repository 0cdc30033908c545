from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from accounts.api_keys import api_key_create, api_key_revoke
from accounts.models import Account, ApiKey, Customer, Hold, Merchant
from accounts.services import merchant_default_provider_set, merchant_fx_spread_set
from core.admin import ReadOnlyAdmin


@admin.register(Merchant)
class MerchantAdmin(SimpleHistoryAdmin, ReadOnlyAdmin):
    """Read-only but for the FX spread and the default payment provider, which staff set
    here (each change audited)."""

    list_display = ("name", "public_id", "fx_spread_bps", "default_provider", "created_at")
    list_filter = ("default_provider",)
    search_fields = ("name", "public_id")
    fields = ("name", "public_id", "fx_spread_bps", "default_provider", "created_at")
    readonly_fields = ("name", "public_id", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("accounts.change_merchant")

    def save_model(self, request: HttpRequest, obj: Merchant, form: Any, change: bool) -> None:
        if "fx_spread_bps" in form.changed_data:
            merchant_fx_spread_set(merchant=obj, spread_bps=form.cleaned_data["fx_spread_bps"])
        if "default_provider" in form.changed_data:
            merchant_default_provider_set(
                merchant=obj, provider=form.cleaned_data["default_provider"]
            )


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


class ApiKeyCreationForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("merchant", "name", "read_only")


@admin.register(ApiKey)
class ApiKeyAdmin(SimpleHistoryAdmin):
    """Staff create and revoke keys here; the secret is shown once, right after creation."""

    list_display = (
        "public_id",
        "prefix",
        "merchant",
        "name",
        "read_only",
        "revoked",
        "created_at",
        "last_used_at",
    )
    list_filter = ("revoked", "read_only", "merchant")
    search_fields = ("public_id", "prefix", "name", "merchant__name")
    readonly_fields = (
        "public_id",
        "merchant",
        "name",
        "prefix",
        "read_only",
        "revoked",
        "created_at",
        "last_used_at",
    )
    actions = ("revoke_selected",)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # nothing about a key is edited; revoke it with the action
        created, secret = api_key_create(
            merchant=obj.merchant, name=obj.name, read_only=obj.read_only
        )
        obj.pk = created.pk
        messages.warning(request, f"The new API key, shown this once — copy it now: {secret}")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: Any) -> None:
        for api_key in queryset.filter(revoked=False):
            api_key_revoke(api_key=api_key, reason=f"revoked in the admin by {request.user}")
        messages.success(request, "Revoked.")
