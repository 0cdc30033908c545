"""The ledger's view of an account: its balance (now or at a time) and its entries."""

from typing import Any

from rest_framework import serializers

from core.api.fields import StrictSerializer
from core.api.schema import ObjectTypeField


class BalanceQuery(StrictSerializer):
    as_of = serializers.DateTimeField(
        required=False, help_text="The balance as it stood at this time (ISO 8601); now if absent."
    )


class BalanceOutput(serializers.Serializer):
    account = serializers.CharField()
    currency = serializers.CharField()
    balance = serializers.IntegerField()
    available = serializers.IntegerField()


class EntryOutput(serializers.Serializer):
    object = ObjectTypeField("ledger_entry")
    ledger_transaction = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    balance_after = serializers.IntegerField()
    created = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "object": "ledger_entry",
            "ledger_transaction": instance.transaction.public_id,
            "amount": instance.amount,
            "currency": instance.currency,
            "balance_after": instance.balance_after,
            "created": instance.created_at,
        }
