from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from audit.services import audit_log_record
from core.api.authentication import ApiKeyPrincipal


class HasApiKey(permissions.BasePermission):
    """Any live API key may read; only a key without read-only scope may write. A refused
    write is audited (RELIABILITY B10), in its own statement: no transaction is open yet
    (the permission check comes before the view, and before its idempotency key)."""

    message = "This API key is read-only."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, ApiKeyPrincipal):
            return False
        if request.method in permissions.SAFE_METHODS or not principal.api_key.read_only:
            return True
        audit_log_record(
            action="api_key.write_denied",
            object_type="api_key",
            object_id=principal.api_key.prefix,
            new_values={"method": request.method, "path": request.path},
            reason="a read-only API key tried to write",
        )
        return False
