"""An account's balance and entries, under the account's own paths
(`/api/v1/accounts/{id}/balance`, `/api/v1/accounts/{id}/entries`): the account is the
accounts app's, what it holds is the ledger's."""

from dataclasses import asdict

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Account, AccountKind
from core.api.fields import foreign_object_check
from core.api.views import MerchantScopedViewSet
from ledger.api.serializers import BalanceOutput, BalanceQuery, EntryOutput
from ledger.models import LedgerEntry
from ledger.selectors import account_balance, wallet_balance_now


# The ledger's actions on a wallet account, routed beside accounts.api.views' AccountViewSet
# under the same prefix and route names (a comment: drf-spectacular would publish a docstring).
class AccountLedgerViewSet(MerchantScopedViewSet):
    queryset = Account.objects.filter(kind=AccountKind.WALLET)

    @extend_schema(parameters=[BalanceQuery], responses={200: BalanceOutput}, filters=False)
    @action(detail=True, methods=["get"], pagination_class=None)
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
    @action(detail=True, methods=["get"])
    def entries(self, request: Request, id: str) -> Response:
        entries = (
            LedgerEntry.objects.filter(account=self.get_object())
            .select_related("transaction")
            .order_by("-id")
        )
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(EntryOutput(page, many=True).data)
