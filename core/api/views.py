import functools
from collections.abc import Sequence
from typing import Any, NoReturn

from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.urls import reverse
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework import exceptions, permissions, viewsets
from rest_framework.authentication import BaseAuthentication
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from core.api.fields import PUBLIC_ID, foreign_object_check
from core.api.principal import Principal
from core.api.throttling import AnonymousRateThrottle


class KeylessView(APIView):
    """The views anyone may call (index, schema, docs): no key is read, and every request
    counts against the address's anonymous rate limit."""

    authentication_classes: Sequence[type[BaseAuthentication]] = []
    permission_classes: Sequence[type[permissions.BasePermission]] = []
    throttle_classes: Sequence[type[BaseThrottle]] = [AnonymousRateThrottle]


class JsonErrorsMixin:
    """For views that render something else than JSON (the schema's YAML, the docs' HTML):
    their errors (a 429) are still JSON in the API's error format."""

    def handle_exception(self, exc: Exception) -> Response:
        response: Response = super().handle_exception(exc)  # type: ignore[misc]
        request = self.request  # type: ignore[attr-defined]
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return response


@functools.cache
def _built_schema() -> dict[str, Any]:
    """The schema as `manage.py spectacular` builds it: from the code alone, so once per
    process (building it takes tens of milliseconds)."""
    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    return dict(generator.get_schema(request=None, public=True))


@functools.cache
def _rendered_schema(renderer_class: type[BaseRenderer]) -> tuple[bytes, str]:
    """The schema written by one of the schema view's renderers (JSON or YAML: rendering
    costs as much again as building), once per process and renderer; with its
    Content-Type."""
    renderer = renderer_class()
    content = renderer.render(_built_schema(), renderer.media_type, {})
    charset = f"; charset={renderer.charset}" if renderer.charset else ""
    return bytes(content), f"{renderer.media_type}{charset}"


class CachedSchemaView(KeylessView, JsonErrorsMixin, SpectacularAPIView):
    """/api/v1/schema/: the schema built and rendered once per process, in JSON or YAML as
    negotiated, for anyone (within the anonymous rate limit). drf-spectacular's `lang` and
    `version` parameters are not read: the API has one version, in English."""

    @extend_schema(exclude=True)  # SPECTACULAR_SETTINGS["SERVE_INCLUDE_SCHEMA"] is off
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        renderer_class = type(request.accepted_renderer)
        content, content_type = _rendered_schema(renderer_class)  # type: ignore[arg-type]
        response = HttpResponse(content, content_type=content_type)
        filename = self._get_filename(request, None)
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        return response


class DocsView(KeylessView, JsonErrorsMixin, SpectacularRedocView):
    """/api/v1/docs/: the schema rendered for people, for anyone (within the anonymous rate
    limit), with Redoc served by the project (drf-spectacular-sidecar), no CDN."""

    url_name = "schema"
    template_name = "api/redoc.html"


class ApiIndexView(KeylessView):
    """GET /api/v1/: where a new user starts; no key needed."""

    @extend_schema(exclude=True)  # like the schema and the docs: about the API, not of it
    def get(self, request: Request) -> Response:
        return Response(
            {
                "object": "api",
                "schema": request.build_absolute_uri(reverse("schema")),
                "docs": request.build_absolute_uri(reverse("docs")),
            }
        )


# The one place tenancy is applied: every object an API view reads or finds by id is
# filtered to the calling key's merchant, so another merchant's id is a plain 404. (A
# comment: drf-spectacular would publish a docstring here as the description of the
# operations of every view that has none of its own.)
class MerchantScopedViewSet(viewsets.GenericViewSet):
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
        if isinstance(principal, Principal) and is_write:
            principal.write_refused(method=request.method or "", path=request.path)
        super().permission_denied(request, message=message, code=code)

    @property
    def merchant(self) -> Any:
        """The calling key's merchant (an accounts.models.Merchant: core names no app)."""
        principal = self.request.user
        if not isinstance(principal, Principal):  # HasApiKey has refused already
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
