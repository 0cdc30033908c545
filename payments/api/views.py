from typing import Any

import django_filters
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.errors import ApiError
from core.api.filters import CreatedFilterSet, CurrencyFilter
from core.api.idempotency import idempotent
from core.api.schema import declined_response
from core.api.views import MerchantScopedViewSet
from core.db import json_as_stored
from payments.api.serializers import (
    FxQuoteInput,
    FxQuoteOutput,
    PaymentCancelInput,
    PaymentCaptureInput,
    PaymentInput,
    PaymentOutput,
    PayoutInput,
    PayoutOutput,
    RefundInput,
    RefundOutput,
    TransferInput,
    TransferOutput,
)
from payments.fx import fx_quote_create
from payments.models import (
    CaptureMethod,
    FxQuote,
    Payment,
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
    Transfer,
    TransferStatus,
)
from payments.payments import payment_cancel, payment_capture, payment_create
from payments.payouts import payout_create
from payments.refunds import refund_create
from payments.selectors import (
    payment_attempts_and_timelines,
    payment_attempts_and_timelines_created,
)
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


class PaymentFilter(CreatedFilterSet):
    status = django_filters.ChoiceFilter(choices=PaymentStatus.choices)
    customer = django_filters.CharFilter(
        field_name="customer__public_id", help_text="Only payments of this customer (`cus_…`)."
    )
    account = django_filters.CharFilter(
        field_name="destination_account__public_id",
        help_text="Only payments into this account (`acct_…`).",
    )
    currency = CurrencyFilter(help_text="Only payments in this currency (any case).")

    class Meta:
        model = Payment
        fields: list[str] = []


_ACCEPTED = OpenApiResponse(
    PaymentOutput,
    description="Accepted: the provider is asked in the background; the payment's status "
    "changes when it answers (`processing` until then; follow it with GET or the "
    "`payment.*` events).",
)


def _task_may_have_run() -> bool:
    """Whether an attempt's task enqueued by this request may have run already in this
    process: tasks run eagerly (the demo) and the transaction that enqueued it committed
    (no Idempotency-Key, so no outer transaction holds it back)."""
    return (
        bool(settings.CELERY_TASK_ALWAYS_EAGER) and not transaction.get_connection().in_atomic_block
    )


class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = Payment.objects.select_related(
        "destination_account", "customer", "ledger_transaction"
    )
    serializer_class = PaymentOutput
    filterset_class = PaymentFilter

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context.setdefault("attempts", {})
        context.setdefault("timelines", {})
        return context

    def _output(self, payments: list[Payment]) -> Any:
        attempts, timelines = payment_attempts_and_timelines(payments)
        context = {**self.get_serializer_context(), "attempts": attempts, "timelines": timelines}
        return PaymentOutput(payments, many=True, context=context).data

    def _accepted(self, payment: Payment) -> Response:
        """202 with the payment as it is now. A payment just created is answered from the
        rows `payment_create` wrote, unless its task may have run already in this process
        (the demo's eager mode, once the payment's own transaction committed); otherwise,
        and after a capture or cancel, the payment is read back with its attempts and
        events."""
        if payment.created_with is not None and not _task_may_have_run():
            payment.metadata = json_as_stored(payment.metadata)  # as the row reads back
            attempts, timelines = payment_attempts_and_timelines_created(payment)
            context = {
                **self.get_serializer_context(),
                "attempts": attempts,
                "timelines": timelines,
            }
            return Response(
                PaymentOutput(payment, context=context).data, status=status.HTTP_202_ACCEPTED
            )
        payment = self.get_queryset().get(pk=payment.pk)
        return Response(self._output([payment])[0], status=status.HTTP_202_ACCEPTED)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # noqa: S101 - lists are always paginated
        return self.get_paginated_response(self._output(list(page)))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self._output([self.get_object()])[0])

    @idempotent
    @extend_schema(
        request=PaymentInput,
        responses={
            202: _ACCEPTED,
            402: declined_response(
                "`account_inactive`: the destination account is frozen "
                "or closed; nothing was recorded."
            ),
        },
        description="Take money in: the payment method is charged through a provider in "
        "the background, and the destination account credited with the amount less the "
        "fee once it is captured.",
    )
    def create(self, request: Request) -> Response:
        data = PaymentInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        payment = payment_create(
            merchant=self.merchant,
            destination=fields["destination_account"],
            amount=fields["amount"],
            currency=fields["currency"],
            payment_method=fields["payment_method"],
            customer=fields.get("customer"),
            capture_method=fields.get("capture_method", CaptureMethod.AUTOMATIC),
            description=fields.get("description", ""),
            metadata=fields.get("metadata"),
        )
        return self._accepted(payment)

    @idempotent
    @extend_schema(
        request=PaymentCaptureInput,
        responses={
            202: _ACCEPTED,
            402: declined_response(
                "`authorization_expired`: past `capture_before`; the payment can only be canceled."
            ),
        },
        description="Capture a payment that requires capture: `amount` (default all that "
        "is capturable); the rest of the authorization is released. A payment in another "
        "status, or with an operation in flight, is a 400 naming its status; more than "
        "`amount_capturable` is a 400 `amount_too_large`.",
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def capture(self, request: Request, id: str) -> Response:
        payment = self.get_object()
        data = PaymentCaptureInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        payment = payment_capture(payment=payment, amount=data.validated_data.get("amount"))
        return self._accepted(payment)

    @idempotent
    @extend_schema(
        request=PaymentCancelInput,
        responses={202: _ACCEPTED},
        description="Release the authorization of a payment that requires capture. A "
        "payment in another status, or with an operation in flight, is a 400 naming its "
        "status.",
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def cancel(self, request: Request, id: str) -> Response:
        payment = self.get_object()
        data = PaymentCancelInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        payment = payment_cancel(payment=payment)
        return self._accepted(payment)


class RefundFilter(CreatedFilterSet):
    status = django_filters.ChoiceFilter(choices=RefundStatus.choices)
    payment = django_filters.CharFilter(
        field_name="payment__public_id", help_text="Only refunds of this payment (`pay_…`)."
    )

    class Meta:
        model = Refund
        fields: list[str] = []


class RefundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = Refund.objects.select_related("payment", "ledger_transaction")
    serializer_class = RefundOutput
    filterset_class = RefundFilter

    @idempotent
    @extend_schema(
        request=RefundInput,
        responses={
            202: OpenApiResponse(
                RefundOutput,
                description="Accepted: the amount is held on the payment's account and the "
                "provider asked in the background; the refund stays `pending` until it "
                "answers (follow it with GET or the `refund.*` events).",
            ),
            402: declined_response(
                "`insufficient_funds`: the payment's account does not have the amount "
                "available; `account_inactive`: it is frozen or closed. Nothing was "
                "recorded and nothing sent to the provider."
            ),
        },
        description="Give back all or part of a succeeded payment (the fee is not returned). "
        "A payment in another status is a 400 naming it; more than is left to refund a "
        "400 `amount_too_large` naming what is left, nothing left a 400 "
        "`charge_already_refunded`.",
    )
    def create(self, request: Request) -> Response:
        data = RefundInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        refund = refund_create(
            merchant=self.merchant,
            payment=fields["payment"],
            amount=fields.get("amount"),
            reason=fields.get("reason", ""),
            metadata=fields.get("metadata"),
        )
        # Reloaded: in the demo's eager mode the provider may have answered already.
        refund = self.get_queryset().get(pk=refund.pk)
        return Response(RefundOutput(refund).data, status=status.HTTP_202_ACCEPTED)


class PayoutFilter(CreatedFilterSet):
    status = django_filters.ChoiceFilter(choices=PayoutStatus.choices)
    account = django_filters.CharFilter(
        field_name="source_account__public_id",
        help_text="Only payouts from this account (`acct_…`).",
    )
    currency = CurrencyFilter(help_text="Only payouts in this currency (any case).")

    class Meta:
        model = Payout
        fields: list[str] = []


class PayoutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = Payout.objects.select_related("source_account", "ledger_transaction")
    serializer_class = PayoutOutput
    filterset_class = PayoutFilter

    @idempotent
    @extend_schema(
        request=PayoutInput,
        responses={
            202: OpenApiResponse(
                PayoutOutput,
                description="Accepted: the amount is held on the source account at once "
                "(`available` drops) and the provider asked in the background; the payout "
                "stays `pending` until it answers `paid` or `failed`.",
            ),
            402: declined_response(
                "`insufficient_funds`: the amount is not available on the source account; "
                "`account_inactive`: it is frozen or closed. Nothing was recorded and "
                "nothing sent to the provider."
            ),
        },
        description="Send money from one of your accounts to a bank account, named by the "
        "provider's token for it (`ba_…`). Anything else as `destination` (an account "
        "number, an IBAN) is a 400 `invalid_destination` and is not stored.",
    )
    def create(self, request: Request) -> Response:
        data = PayoutInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        payout = payout_create(
            merchant=self.merchant,
            source=fields["source_account"],
            amount=fields["amount"],
            currency=fields["currency"],
            destination=fields["destination"],
            description=fields.get("description", ""),
            metadata=fields.get("metadata"),
        )
        payout = self.get_queryset().get(pk=payout.pk)
        return Response(PayoutOutput(payout).data, status=status.HTTP_202_ACCEPTED)
