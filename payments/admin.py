from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from core.exceptions import DomainError
from payments.fx import fx_rate_set, fx_rate_validate
from payments.models import FxQuote, FxRate, Transfer


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
        "fx_rate",
        "status",
        "failure_code",
        "created_at",
    )
    list_filter = ("status", "currency", "failure_code")
    search_fields = ("public_id", "source_account__public_id", "destination_account__public_id")
    list_select_related = ("merchant", "source_account", "destination_account")
    date_hierarchy = "created_at"


class FxRateForm(forms.ModelForm):
    class Meta:
        model = FxRate
        fields = ("source_currency", "destination_currency", "rate")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            fx_rate_validate(
                source_currency=data.get("source_currency") or "",
                destination_currency=data.get("destination_currency") or "",
                rate=data.get("rate"),
            )
        except DomainError as error:
            field = error.param if error.param in self.fields else None
            self.add_error(field, error.message)
        return data


@admin.register(FxRate)
class FxRateAdmin(admin.ModelAdmin):
    """Finance staff set reference rates here (as `set_fx_rate` does): each save is a new
    rate, audited with the one it replaces; rates already set are never edited."""

    form = FxRateForm
    list_display = ("source_currency", "destination_currency", "rate", "set_by", "created_at")
    list_filter = ("source_currency", "destination_currency")
    search_fields = ("source_currency", "destination_currency", "set_by")
    date_hierarchy = "created_at"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: FxRate, form: Any, change: bool) -> None:
        created = fx_rate_set(
            source_currency=obj.source_currency,
            destination_currency=obj.destination_currency,
            rate=obj.rate,
        )
        obj.pk, obj.created_at, obj.set_by = created.pk, created.created_at, created.set_by


@admin.register(FxQuote)
class FxQuoteAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id",
        "merchant",
        "source_currency",
        "destination_currency",
        "rate",
        "spread_bps",
        "expires_at",
        "created_at",
    )
    list_filter = ("source_currency", "destination_currency", "merchant")
    search_fields = ("public_id", "merchant__name")
    list_select_related = ("merchant",)
    date_hierarchy = "created_at"
