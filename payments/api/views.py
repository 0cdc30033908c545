from typing import Any

import django_filters
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.errors import ApiError
from core.api.filters import CreatedFilterSet, CurrencyFilter
from core.api.idempotency import idempotent
from core.api.schema import declined_response
from core.api.views import MerchantScopedViewSet
from payments.api.serializers import FxQuoteInput, FxQuoteOutput, TransferInput, TransferOutput
from payments.fx import fx_quote_create
from payments.models import FxQuote, Transfer, TransferStatus
from payments.services import transfer_create


class TransferFilter(CreatedFilterSet):
    status = django_filters.ChoiceFilter(choices=TransferStatus.choices)
    account = django_filters.CharFilter(
        method="filter_account", help_text="Only transfers from or to this account (`acct_…`)."
    )
    currency = CurrencyFilter(help_text="Only transfers in this currency (any case).")

    class Meta:
        model = Transfer
        fields: list[str] = []

    def filter_account(self, queryset: Any, name: str, value: str) -> Any:
        return queryset.filter(
            Q(source_account__public_id=value) | Q(destination_account__public_id=value)
        )


class TransferViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = Transfer.objects.select_related(
        "source_account", "destination_account", "ledger_transaction", "fx_quote", "reversal"
    )
    serializer_class = TransferOutput
    filterset_class = TransferFilter

    @idempotent
    @extend_schema(
        request=TransferInput,
        responses={
            201: TransferOutput,
            402: declined_response(
                "Declined (`insufficient_funds`, `account_inactive`): the transfer was "
                "recorded as failed and `error.transfer` is its id."
            ),
        },
    )
    def create(self, request: Request) -> Response:
        data = TransferInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        transfer = transfer_create(
            merchant=self.merchant,
            source=fields["source_account"],
            destination=fields["destination_account"],
            amount=fields["amount"],
            description=fields.get("description", ""),
            metadata=fields.get("metadata"),
            fx_quote=fields.get("fx_quote"),
        )
        if transfer.status == TransferStatus.FAILED:
            raise ApiError(
                status_code=status.HTTP_402_PAYMENT_REQUIRED,
                type="payment_error",
                code=transfer.failure_code,
                message=transfer.failure_message,
                transfer=transfer.public_id,
            )
        return Response(TransferOutput(transfer).data, status=status.HTTP_201_CREATED)


class FxQuoteViewSet(mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = FxQuote.objects.all()
    serializer_class = FxQuoteOutput

    @idempotent
    @extend_schema(
        request=FxQuoteInput,
        responses={201: FxQuoteOutput},
        description="A rate for the pair, good until `expires_at`: the platform's reference "
        "rate less your FX spread. No reference rate for the pair is a 400.",
    )
    def create(self, request: Request) -> Response:
        data = FxQuoteInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        quote = fx_quote_create(merchant=self.merchant, **data.validated_data)
        return Response(FxQuoteOutput(quote).data, status=status.HTTP_201_CREATED)
