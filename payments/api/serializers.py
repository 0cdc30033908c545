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
from payments.representations import transfer_data


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
    fx_rate = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["succeeded", "failed"])
    failure_code = serializers.CharField(allow_null=True)
    failure_message = serializers.CharField(allow_null=True)
    description = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    ledger_transaction = serializers.CharField(allow_null=True)
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return transfer_data(instance)
