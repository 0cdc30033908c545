from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

from audit.models import AuditLog, Event
from core.admin import ReadOnlyAdmin
from core.exceptions import DomainError
from payments.fees import pricing_set
from payments.fx import fx_rate_set, fx_rate_validate
from payments.models import (
    FxQuote,
    FxRate,
    Payment,
    PaymentAttempt,
    Payout,
    Pricing,
    ProviderWebhook,
    Refund,
    Transfer,
)


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


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    fields = (
        "public_id",
        "kind",
        "provider",
        "routing_reason",
        "amount",
        "status",
        "decline_class",
        "failure_code",
        "provider_reference",
        "latency_ms",
        "tries",
        "created_at",
        "completed_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    fields = ("public_id", "amount", "reason", "status", "failure_code", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    """A payment in one place: its attempts, its ledger transaction, events and audit
    trail. Its state changes only through the payment services."""

    list_display = (
        "public_id",
        "merchant",
        "amount",
        "currency",
        "status",
        "capture_method",
        "provider",
        "decline_class",
        "failure_code",
        "created_at",
    )
    list_filter = ("status", "provider", "capture_method", "decline_class", "currency")
    search_fields = (
        "public_id",
        "provider_reference",
        "merchant__name",
        "destination_account__public_id",
        "customer__public_id",
    )
    list_select_related = ("merchant",)
    date_hierarchy = "created_at"
    inlines = (PaymentAttemptInline, RefundInline)
    readonly_fields = ("events", "audit_trail")

    @admin.display(description="events")
    def events(self, payment: Payment) -> SafeString:
        rows = Event.objects.filter(object_type="payment", object_id=payment.public_id)
        return format_html_join(
            "",
            "<div>{} {} {}</div>",
            rows.order_by("id").values_list("created_at", "type", "public_id"),
        )

    @admin.display(description="audit trail")
    def audit_trail(self, payment: Payment) -> SafeString:
        rows = AuditLog.objects.filter(object_type="payment", object_id=payment.public_id)
        return format_html_join(
            "",
            "<div>{} {} by {}:{}</div>",
            rows.order_by("id").values_list("created_at", "action", "actor_type", "actor"),
        ) or format_html("<div>{}</div>", "none")


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdmin):
    """Every provider call; never changed once final (PostgreSQL refuses it)."""

    list_display = (
        "public_id",
        "payment",
        "refund",
        "payout",
        "kind",
        "provider",
        "status",
        "decline_class",
        "failure_code",
        "latency_ms",
        "tries",
        "created_at",
    )
    list_filter = ("status", "kind", "provider", "decline_class")
    search_fields = (
        "public_id",
        "payment__public_id",
        "refund__public_id",
        "payout__public_id",
        "provider_reference",
    )
    list_select_related = ("payment", "refund", "payout")
    date_hierarchy = "created_at"


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    """Refunds change only through payments.refunds (admission, the provider's answer)."""

    list_display = (
        "public_id",
        "merchant",
        "payment",
        "amount",
        "currency",
        "status",
        "provider",
        "failure_code",
        "created_at",
    )
    list_filter = ("status", "provider", "reason", "currency")
    search_fields = ("public_id", "payment__public_id", "provider_reference", "merchant__name")
    list_select_related = ("merchant", "payment")
    date_hierarchy = "created_at"
    inlines = (PaymentAttemptInline,)


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    """Payouts change only through payments.payouts (creation, the provider's answer)."""

    list_display = (
        "public_id",
        "merchant",
        "source_account",
        "amount",
        "currency",
        "destination",
        "status",
        "provider",
        "failure_code",
        "created_at",
    )
    list_filter = ("status", "provider", "currency")
    search_fields = (
        "public_id",
        "source_account__public_id",
        "provider_reference",
        "merchant__name",
    )
    list_select_related = ("merchant", "source_account")
    date_hierarchy = "created_at"
    inlines = (PaymentAttemptInline,)


@admin.register(ProviderWebhook)
class ProviderWebhookAdmin(ReadOnlyAdmin):
    """Providers' webhooks as they came, and how their processing went; a dead one is
    retried from its dead letter (audit's DeadLetter admin, "Retry")."""

    list_display = (
        "received_at",
        "provider",
        "type",
        "event_id",
        "object_reference",
        "status",
        "tries",
        "processed_at",
    )
    list_filter = ("provider", "status", "type")
    search_fields = ("event_id", "object_reference", "attempt_reference")
    date_hierarchy = "received_at"
    exclude = ("body",)
    readonly_fields = ("body_text",)

    @admin.display(description="body")
    def body_text(self, webhook: ProviderWebhook) -> str:
        return bytes(webhook.body).decode("utf-8", errors="replace")


class PricingForm(forms.ModelForm):
    class Meta:
        model = Pricing
        fields = ("merchant", "currency", "percent_bps", "fixed_fee")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk is not None:  # the merchant and currency of a pricing stay
            data["merchant"], data["currency"] = self.instance.merchant, self.instance.currency
        return data


@admin.register(Pricing)
class PricingAdmin(SimpleHistoryAdmin):
    """Finance staff set each merchant's pricing per currency here (audited by
    `pricing_set`); no row, no fee."""

    form = PricingForm
    list_display = ("merchant", "currency", "percent_bps", "fixed_fee", "updated_at")
    list_filter = ("currency",)
    search_fields = ("merchant__name", "merchant__public_id")
    list_select_related = ("merchant",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("merchant", "currency") if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # set the fee to 0 instead: every change stays in the audit trail

    def save_model(self, request: HttpRequest, obj: Pricing, form: Any, change: bool) -> None:
        try:
            saved = pricing_set(
                merchant=obj.merchant,
                currency=obj.currency,
                percent_bps=obj.percent_bps,
                fixed_fee=obj.fixed_fee,
            )
        except DomainError as error:
            raise forms.ValidationError(error.message) from error
        obj.pk, obj.updated_at = saved.pk, saved.updated_at
