"""`Authorization: Bearer <api key>`: the caller is a merchant's API key."""

import functools
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.api.throttling import ApiKeyRateThrottle
from accounts.api_keys import api_key_authenticate, api_key_write_refused
from accounts.models import ApiKey, Merchant
from audit import context
from audit.context import ActorType, audit_log_after_response
from core.api.principal import Principal
from core.cache import default_redis
from core.logging import API_KEY_META, MERCHANT_META


@dataclass(frozen=True)
class ApiKeyPrincipal(Principal):
    """`request.user` for API requests: the key and the merchant it acts for."""

    api_key: ApiKey

    @property
    def merchant(self) -> Merchant:
        return self.api_key.merchant

    @property
    def read_only(self) -> bool:
        return self.api_key.read_only

    def write_refused(self, *, method: str, path: str) -> None:
        api_key_write_refused(api_key=self.api_key, method=method, path=path)

    def foreign_object_denied(
        self, request: HttpRequest, *, method: str, path: str, public_id: str, param: str | None
    ) -> None:
        audit_log_after_response(
            request,
            action="api_key.foreign_object_denied",
            object_type="api_key",
            object_id=self.api_key.public_id,
            new_values={"method": method, "path": path, "object": public_id, "param": param},
            reason="an API key named another merchant's object",
        )


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: HttpRequest) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, secret = header.partition(" ")
        # The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
        if scheme.lower() != self.keyword.lower() or not secret.strip():
            raise exceptions.AuthenticationFailed("Use `Authorization: Bearer <api key>`.")
        # Checking the key cache's generation takes the rate limit's round trip to Redis.
        read_generation = (
            functools.partial(ApiKeyRateThrottle.count_and_read, request)
            if default_redis() is not None
            else None
        )
        api_key = api_key_authenticate(secret.strip(), read_generation=read_generation)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        # The key's unique public id, and the merchant it acts for, on every audit row and
        # log line the request writes (the prefix is for display only: not unique).
        context.rebind(
            actor_type=ActorType.API_KEY, actor=api_key.public_id, merchant_id=api_key.merchant_id
        )
        request.META[API_KEY_META] = api_key.public_id
        request.META[MERCHANT_META] = api_key.merchant.public_id
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request: HttpRequest) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A merchant's API key"}
