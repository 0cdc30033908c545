import functools
from typing import Any, NoReturn

from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework import exceptions, permissions, serializers, viewsets
from rest_framework.authentication import BaseAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_keys import api_key_write_refused
from accounts.models import Merchant
from core.api.authentication import ApiKeyPrincipal
from core.api.fields import PUBLIC_ID, foreign_object_check
from core.api.throttling import AnonymousRateThrottle


@functools.cache
def _built_schema() -> dict[str, Any]:
    """The schema as `manage.py spectacular` builds it: from the code alone, so once per
    process (building it takes tens of milliseconds)."""
    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    return dict(generator.get_schema(request=None, public=True))


class JsonErrorsMixin:
    """For views that render something else than JSON (the schema's YAML, the docs' HTML):
    their errors (a 429) are still JSON in the API's error format."""

    def handle_exception(self, exc: Exception) -> Response:
        response: Response = super().handle_exception(exc)  # type: ignore[misc]
        request = self.request  # type: ignore[attr-defined]
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return response


class CachedSchemaView(JsonErrorsMixin, SpectacularAPIView):
    """/api/v1/schema/: the schema built once per process, in JSON or YAML as negotiated,
    for anyone (within the anonymous rate limit). drf-spectacular's `lang` and `version`
    parameters are not read: the API has one version, in English."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes: list[type[permissions.BasePermission]] = []
    throttle_classes = [AnonymousRateThrottle]

    @extend_schema(exclude=True)  # SPECTACULAR_SETTINGS["SERVE_INCLUDE_SCHEMA"] is off
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filename = self._get_filename(request, None)
        return Response(
            _built_schema(), headers={"Content-Disposition": f'inline; filename="{filename}"'}
        )


class DocsView(JsonErrorsMixin, SpectacularRedocView):
    """/api/v1/docs/: the schema rendered for people, for anyone (within the anonymous rate
    limit)."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes: list[type[permissions.BasePermission]] = []
    throttle_classes = [AnonymousRateThrottle]
    url_name = "schema"


class ApiIndexView(APIView):
    """GET /api/v1/: where a new user starts; no key needed."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes: list[type[permissions.BasePermission]] = []
    throttle_classes = [AnonymousRateThrottle]

    @extend_schema(
        operation_id="api_index",
        description="Links to the schema and the docs; no API key needed.",
        auth=[],
        responses=inline_serializer(
            "ApiIndex",
            {
                "object": serializers.ChoiceField(choices=["api"]),
                "schema": serializers.URLField(help_text="The OpenAPI 3 schema."),
                "docs": serializers.URLField(help_text="The schema rendered for people."),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "object": "api",
                "schema": request.build_absolute_uri(reverse("schema")),
                "docs": request.build_absolute_uri(reverse("docs")),
            }
        )


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

    def perform_authentication(self, request: Request) -> None:
        try:
            super().perform_authentication(request)
        except exceptions.AuthenticationFailed:
            # An invalid key counts against its address's anonymous rate limit (the key's
            # own cannot be known): a flood of guesses gets 429s, not unbounded 401s.
            self.check_throttles(request)
            raise

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
        is_write = request.method not in permissions.SAFE_METHODS
        if isinstance(principal, ApiKeyPrincipal) and is_write:
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
