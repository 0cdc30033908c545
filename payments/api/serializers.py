from typing import Any

from rest_framework import serializers

from accounts.models import Account, AccountKind, Customer
from core.api.fields import (
    AmountField,
    ChoiceField,
    CurrencyField,
    MerchantObjectField,
    MetadataField,
    StrictSerializer,
    TextField,
)
from core.api.schema import ObjectTypeField
from payments.models import (
    AttemptKind,
    AttemptStatus,
    CaptureMethod,
    FxQuote,
    Payment,
    PaymentStatus,
    PayoutStatus,
    RefundReason,
    RefundStatus,
    TransferStatus,
)
from payments.payments import PAYMENT_METHOD_MAX_LENGTH
from payments.providers.base import DeclineClass
from payments.representations import (
    fx_quote_data,
    payment_data,
    payout_data,
    refund_data,
    transfer_data,
)


class TransferInput(StrictSerializer):
    source_account = MerchantObjectField(
        Account,
        only={"kind": AccountKind.WALLET},
        help_text="Id of one of your accounts (`acct_…`) to take the money from.",
    )
    destination_account = MerchantObjectField(
        Account,
        only={"kind": AccountKind.WALLET},
        help_text="Id of another of your accounts, in the same currency.",
    )
    amount = AmountField()
    currency = CurrencyField()
    fx_quote = MerchantObjectField(
        FxQuote,
        required=False,
        unknown_code="fx_quote_missing",
        help_text="Id of an unexpired FX quote (`fxq_…`) for the two accounts' currencies: "
        "required when they differ, refused when they match.",
    )
    description = TextField(required=False, max_length=500)
    metadata = MetadataField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["currency"] != attrs["source_account"].currency:
            raise serializers.ValidationError(
                {"currency": ["must be the source account's currency"]}, code="currency_mismatch"
            )
        return attrs


class TransferOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("transfer")
    source_account = serializers.CharField()
    destination_account = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    destination_amount = serializers.IntegerField()
    destination_currency = serializers.CharField()
    fx_quote = serializers.CharField(allow_null=True)
    fx_rate = serializers.CharField(
        allow_null=True, help_text="The quote's rate, as a decimal string."
    )
    status = serializers.ChoiceField(choices=TransferStatus.values)
    failure_code = serializers.CharField(allow_null=True)
    failure_message = serializers.CharField(allow_null=True)
    description = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    ledger_transaction = serializers.CharField(allow_null=True)
    reversal = serializers.CharField(
        allow_null=True, help_text="The ledger transaction that reversed it, once reversed."
    )
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return transfer_data(instance)


class FxQuoteInput(StrictSerializer):
    source_currency = CurrencyField()
    destination_currency = CurrencyField()


class FxQuoteOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("fx_quote")
    source_currency = serializers.CharField()
    destination_currency = serializers.CharField()
    rate = serializers.CharField(
        help_text="Major units of the destination currency for one of the source, as a "
        "decimal string: the platform's reference rate less your FX spread."
    )
    expires_at = serializers.DateTimeField()
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return fx_quote_data(instance)


class PaymentInput(StrictSerializer):
    amount = AmountField()
    currency = CurrencyField(help_text="ISO 4217 code, any case: the destination account's.")
    destination_account = MerchantObjectField(
        Account,
        only={"kind": AccountKind.WALLET},
        help_text="Id of one of your accounts (`acct_…`), in the payment's currency, to credit.",
    )
    payment_method = TextField(
        max_length=PAYMENT_METHOD_MAX_LENGTH,
        allow_blank=False,
        help_text="The payment method to charge, e.g. `pm_card_visa` (`pm_` then letters, "
        "digits and underscores).",
    )
    customer = MerchantObjectField(
        Customer, required=False, help_text="Id of one of your customers (`cus_…`), who pays."
    )
    capture_method = ChoiceField(
        choices=CaptureMethod.values,
        required=False,
        help_text="`automatic` (default): captured as soon as authorized; `manual`: "
        "authorized, then captured with POST /payments/{id}/capture before `capture_before`.",
    )
    description = TextField(required=False, max_length=500)
    metadata = MetadataField()


class PaymentCaptureInput(StrictSerializer):
    amount = AmountField(
        required=False,
        help_text="Minor units to capture, at most `amount_capturable` (the default); the "
        "rest of the authorization is released.",
    )


class PaymentCancelInput(StrictSerializer):
    """No fields: the whole authorization is released."""


class PaymentAttemptOutput(serializers.Serializer):
    id = serializers.CharField(
        help_text="The attempt's id, sent to the provider as the idempotency key of its call."
    )
    kind = serializers.ChoiceField(choices=AttemptKind.values)
    status = serializers.ChoiceField(choices=AttemptStatus.values)
    provider = serializers.CharField()
    decline_class = serializers.ChoiceField(
        choices=[value.value for value in DeclineClass], allow_null=True
    )
    created = serializers.DateTimeField()


class TimelineEntry(serializers.Serializer):
    id = serializers.CharField(help_text="The event's id (`evt_…`).")
    type = serializers.CharField(help_text="e.g. `payment.succeeded`.")
    created = serializers.DateTimeField()


class PaymentOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("payment")
    status = serializers.ChoiceField(choices=PaymentStatus.values)
    amount = serializers.IntegerField()
    amount_capturable = serializers.IntegerField(
        help_text="What a capture may still take (manual capture)."
    )
    amount_captured = serializers.IntegerField()
    amount_refunded = serializers.IntegerField()
    fee = serializers.IntegerField(help_text="The platform's fee on the captured amount.")
    net = serializers.IntegerField(help_text="What the destination account received.")
    currency = serializers.CharField()
    destination_account = serializers.CharField()
    customer = serializers.CharField(allow_null=True)
    payment_method = serializers.CharField()
    capture_method = serializers.ChoiceField(choices=CaptureMethod.values)
    capture_before = serializers.DateTimeField(
        allow_null=True,
        help_text="Manual capture: the authorization is canceled if not captured by then.",
    )
    failure_code = serializers.CharField(allow_null=True)
    failure_message = serializers.CharField(allow_null=True)
    decline_class = serializers.ChoiceField(
        choices=[value.value for value in DeclineClass], allow_null=True
    )
    provider = serializers.CharField()
    provider_reference = serializers.CharField(allow_null=True)
    ledger_transaction = serializers.CharField(allow_null=True)
    description = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    attempts = PaymentAttemptOutput(many=True, help_text="Every provider call, oldest first.")
    timeline = TimelineEntry(many=True, help_text="The payment's events, oldest first.")
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        payment: Payment = instance
        return {
            **payment_data(payment),
            "attempts": self.context["attempts"].get(payment.pk, []),
            "timeline": self.context["timelines"].get(payment.public_id, []),
        }


class RefundInput(StrictSerializer):
    payment = MerchantObjectField(
        Payment, help_text="Id of one of your succeeded payments (`pay_…`) to refund."
    )
    amount = AmountField(
        required=False,
        help_text="Minor units to give back, at most what is left to refund (captured less "
        "the refunds pending or succeeded): the default.",
    )
    reason = ChoiceField(
        choices=RefundReason.values, required=False, help_text="Why, optionally (Stripe's)."
    )
    metadata = MetadataField()


class RefundOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("refund")
    payment = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    reason = serializers.ChoiceField(choices=RefundReason.values, allow_null=True)
    status = serializers.ChoiceField(choices=RefundStatus.values)
    failure_code = serializers.CharField(allow_null=True)
    failure_message = serializers.CharField(allow_null=True)
    provider = serializers.CharField(help_text="The payment's provider.")
    provider_reference = serializers.CharField(
        allow_null=True, help_text="The provider's id of the refund, once it answered."
    )
    ledger_transaction = serializers.CharField(
        allow_null=True,
        help_text="The posting that took the amount out of the payment's account, once "
        "the refund succeeded.",
    )
    metadata = serializers.DictField(child=serializers.CharField())
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return refund_data(instance)


class PayoutInput(StrictSerializer):
    source_account = MerchantObjectField(
        Account,
        only={"kind": AccountKind.WALLET},
        help_text="Id of one of your accounts (`acct_…`) to pay out from.",
    )
    amount = AmountField()
    currency = CurrencyField(help_text="ISO 4217 code, any case: the source account's.")
    destination = TextField(
        max_length=255,
        help_text="The bank account, as the provider's token for it (`ba_…`, e.g. `ba_ok`); "
        "never an account number or an IBAN.",
    )
    description = TextField(required=False, max_length=500)
    metadata = MetadataField()


class PayoutOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("payout")
    source_account = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    destination = serializers.CharField()
    status = serializers.ChoiceField(choices=PayoutStatus.values)
    failure_code = serializers.CharField(allow_null=True)
    failure_message = serializers.CharField(allow_null=True)
    provider = serializers.CharField()
    provider_reference = serializers.CharField(
        allow_null=True, help_text="The provider's id of the payout, once it answered."
    )
    ledger_transaction = serializers.CharField(
        allow_null=True,
        help_text="The posting that took the amount out of the source account, once paid.",
    )
    description = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return payout_data(instance)
