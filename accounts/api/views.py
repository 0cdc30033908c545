from dataclasses import asdict

import django_filters
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.serializers import (
    AccountInput,
    AccountOutput,
    BalanceOutput,
    BalanceQuery,
    CustomerInput,
    CustomerOutput,
    EntryOutput,
)
from accounts.models import Account, AccountKind, AccountStatus, Customer
from accounts.services import account_create, customer_create
from core.api.fields import foreign_object_check
from core.api.filters import CreatedFilterSet, CurrencyFilter
from core.api.idempotency import idempotent
from core.api.views import MerchantScopedViewSet
from ledger.models import LedgerEntry
from ledger.selectors import account_balance, wallet_balance_now


class CustomerFilter(CreatedFilterSet):
    class Meta:
        model = Customer
        fields: list[str] = []


class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = Customer.objects.all()
    serializer_class = CustomerOutput
    filterset_class = CustomerFilter

    @idempotent
    @extend_schema(request=CustomerInput, responses={201: CustomerOutput})
    def create(self, request: Request) -> Response:
        data = CustomerInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        customer = customer_create(merchant=self.merchant, **data.validated_data)
        return Response(CustomerOutput(customer).data, status=status.HTTP_201_CREATED)


class AccountFilter(CreatedFilterSet):
    status = django_filters.ChoiceFilter(choices=AccountStatus.choices)
    customer = django_filters.CharFilter(
        field_name="customer__public_id", help_text="Only this customer's accounts (`cus_…`)."
    )
    currency = CurrencyFilter(help_text="Only accounts in this currency (any case).")

    class Meta:
        model = Account
        fields: list[str] = []


class AccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = Account.objects.filter(kind=AccountKind.WALLET).select_related("customer")
    serializer_class = AccountOutput
    filterset_class = AccountFilter

    @idempotent
    @extend_schema(request=AccountInput, responses={201: AccountOutput})
    def create(self, request: Request) -> Response:
        data = AccountInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        account = account_create(merchant=self.merchant, **data.validated_data)
        return Response(AccountOutput(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[BalanceQuery], responses={200: BalanceOutput}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def balance(self, request: Request, id: str) -> Response:
        as_of = None
        if request.query_params:  # the usual read has none: no serializer to build
            query = BalanceQuery(data=request.query_params.dict())
            query.is_valid(raise_exception=True)
            as_of = query.validated_data.get("as_of")
        if as_of is not None:
            balance = account_balance(account=self.get_object(), as_of=as_of)
        else:
            # Tenancy as everywhere (the key's merchant), with no account object to build.
            found = wallet_balance_now(merchant=self.merchant, public_id=id)
            if found is None:
                foreign_object_check(request, Account, id, param=None)
                raise Http404
            balance = found
        return Response(asdict(balance))

    @extend_schema(responses={200: EntryOutput(many=True)}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None)
    def entries(self, request: Request, id: str) -> Response:
        entries = (
            LedgerEntry.objects.filter(account=self.get_object())
            .select_related("transaction")
            .order_by("-id")
        )
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(EntryOutput(page, many=True).data)
