from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions, viewsets
from rest_framework.request import Request

from accounts.models import Merchant
from core.api.authentication import ApiKeyPrincipal


class MerchantScopedViewSet(viewsets.GenericViewSet):
    """The one place tenancy is applied: every object an API view reads or finds by id is
    filtered to the calling key's merchant, so another merchant's id is a plain 404."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    # Public ids are `prefix_` + base62: anything else (a NUL byte, say) is no route, and
    # never reaches PostgreSQL, which would refuse it with an error of its own (a 500).
    lookup_value_regex = "[0-9A-Za-z_]{1,64}"
    merchant_field = "merchant"

    _throttles_checked = False

    def check_permissions(self, request: Request) -> None:
        # The rate limit first: a refused request (a read-only key writing, which is
        # audited) counts against the key's rate like any other, so it cannot fill the
        # append-only audit log faster than the key may make requests.
        self.check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request: Request) -> None:
        if not self._throttles_checked:  # DRF's initial() calls it again after permissions
            self._throttles_checked = True
            super().check_throttles(request)

    @property
    def merchant(self) -> Merchant:
        principal = self.request.user
        if not isinstance(principal, ApiKeyPrincipal):  # HasApiKey has refused already
            raise exceptions.NotAuthenticated()
        return principal.merchant

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().filter(**{self.merchant_field: self.merchant})
