from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from core.api.principal import Principal


class HasApiKey(permissions.BasePermission):
    """Any live API key may read; only a key without read-only scope may write."""

    message = "This API key is read-only."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            return False
        return request.method in permissions.SAFE_METHODS or not principal.read_only
