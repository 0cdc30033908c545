"""Input serializers validate; output serializers declare the shape for the schema and
delegate to `accounts.representations`, the one definition of it."""

from typing import Any

from rest_framework import serializers

from accounts.models import Customer
from accounts.representations import account_data, customer_data
from core.api.fields import (
    CurrencyField,
    MerchantObjectField,
    MetadataField,
    StrictSerializer,
    TextField,
)
from core.api.schema import ObjectTypeField


class CustomerInput(StrictSerializer):
    name = TextField(required=False, max_length=200)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    external_reference = TextField(required=False, max_length=200)
    metadata = MetadataField()


class CustomerOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("customer")
    name = serializers.CharField()
    email = serializers.CharField()
    external_reference = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return customer_data(instance)


class AccountInput(StrictSerializer):
    currency = CurrencyField()
    customer = MerchantObjectField(
        Customer,
        required=False,
        allow_null=True,
        help_text="Id of one of your customers (`cus_…`), or null.",
    )
    description = TextField(required=False, max_length=200)
    metadata = MetadataField()


class AccountOutput(serializers.Serializer):
    id = serializers.CharField()
    object = ObjectTypeField("account")
    currency = serializers.CharField()
    customer = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["active", "frozen", "closed"])
    overdraft_limit = serializers.IntegerField()
    description = serializers.CharField()
    metadata = serializers.DictField(child=serializers.CharField())
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return account_data(instance)
