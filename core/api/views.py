from typing import Any, NoReturn

from django.db.models import QuerySet
from django.http import Http404
from rest_framework import exceptions, permissions, viewsets
from rest_framework.request import Request

from accounts.api_keys import api_key_write_refused
from accounts.models import Merchant
from core.api.authentication import ApiKeyPrincipal
from core.api.fields import PUBLIC_ID, foreign_object_check


class MerchantScopedViewSet(viewsets.GenericViewSet):
    """The one place tenancy is applied: every object an API view reads or finds by id is
    filtered to the calling key's merchant, so another merchant's id is a plain 404."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    # Public ids are `prefix_` + base62: anything else (a NUL byte, say) is no route, and
    # never reaches PostgreSQL, which would refuse it with an error of its own (a 500).
    lookup_value_regex = PUBLIC_ID.pattern
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

    def permission_denied(
        self, request: Request, message: str | None = None, code: str | None = None
    ) -> NoReturn:
        principal = request.user
        # DRF's OPTIONS answer probes the permissions with a copy of the request made a
        # POST (`request._request` is still the OPTIONS): only a real write is audited.
        is_write = request.method not in permissions.SAFE_METHODS
        is_probe = request._request.method != request.method
        if isinstance(principal, ApiKeyPrincipal) and is_write and not is_probe:
            api_key_write_refused(
                api_key=principal.api_key, method=request.method, path=request.path
            )
        super().permission_denied(request, message=message, code=code)

    @property
    def merchant(self) -> Merchant:
        principal = self.request.user
        if not isinstance(principal, ApiKeyPrincipal):  # HasApiKey has refused already
            raise exceptions.NotAuthenticated()
        return principal.merchant

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().filter(**{self.merchant_field: self.merchant})

    def get_object(self) -> Any:
        try:
            return super().get_object()
        except Http404:
            # Still the plain 404; another merchant's id is audited (RELIABILITY B8).
            model = self.get_queryset().model
            foreign_object_check(
                self.request, model, str(self.kwargs[self.lookup_url_kwarg]), param=None
            )
            raise
