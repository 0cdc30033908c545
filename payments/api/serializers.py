from typing import Any

from rest_framework import serializers

from accounts.models import Account, AccountKind
from core.api.fields import (
    AmountField,
    CurrencyField,
    MerchantObjectField,
    MetadataField,
    StrictSerializer,
    TextField,
)
from core.api.schema import ObjectTypeField
from payments.models import FxQuote, TransferStatus
from payments.representations import fx_quote_data, transfer_data


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
