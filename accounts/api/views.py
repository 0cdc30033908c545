import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.serializers import (
    AccountInput,
    AccountOutput,
    CustomerInput,
    CustomerOutput,
)
from accounts.models import Account, AccountKind, AccountStatus, Customer
from accounts.services import account_create, customer_create
from core.api.filters import CreatedFilterSet, CurrencyFilter
from core.api.idempotency import idempotent
from core.api.views import MerchantScopedViewSet


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
