"""`Idempotency-Key` for every POST that creates or moves money (SPEC §4.1).

Put `@idempotent` on the view method, above its `@extend_schema` (it adds the header and
the 409 / 422 answers to the schema that is already there)::

    @idempotent
    @extend_schema(request=TransferInput, responses={201: TransferOutput})
    def create(self, request: Request) -> Response: ...

A request with the header runs in two atomic phases (docs/adr/0006-idempotency-keys.md):

1. **Claim** the key `(merchant, key)` in a transaction of its own, committed before any
   work starts: `INSERT … ON CONFLICT DO NOTHING` with a fresh lock token. A key that
   already exists is replayed (completed, same request), refused (422 for another
   request, 409 while a live holder runs), or taken over by a fenced UPDATE on its token
   and `locked_at`: at once when the holder's PostgreSQL session is gone (its process
   died), else once the lock is stale.
2. **Work and complete** in ONE `transaction.atomic`: the view (and so its service) runs,
   and the response is stored by an UPDATE fenced on the lock token. If that UPDATE
   touches no row the key was taken over meanwhile, and the whole effect rolls back.
   Responses that say nothing was done (any 4xx but 402, any 5xx) are not stored: the
   phase rolls back and the key is released, so a corrected retry works.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, HttpResponseBase, QueryDict
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from core.api.errors import ApiError
from core.api.views import MerchantScopedViewSet
from core.db import (
    insert_rows,
    is_lock_conflict,
    retry_on_conflict,
    session_alive,
    session_current,
    update_rows,
)
from core.models import IdempotencyKey, IdempotencyKeyState
from core.postgresql.base import Session

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = 255
# Claiming loops only when the row it saw vanished or changed hands between two statements.
_CLAIM_ATTEMPTS = 5

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type={"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH, "pattern": "^[ -~]+$"},
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Up to 255 printable ASCII characters (a V4 UUID is a good choice), scoped to the "
        "merchant and kept at least 24 hours. A retry with the same key and the same request "
        "gets the first response again, status and body byte for byte, with "
        "`Idempotent-Replayed: true`, and moves nothing more. Only successes and declines "
        "(402) are kept: after any other error (400, 404, 500, …) nothing was done, and a "
        "retry with the same key runs."
    ),
)
IDEMPOTENCY_RESPONSES: dict[int, OpenApiResponse] = {
    409: OpenApiResponse(
        description="`idempotency_error` / `idempotency_key_in_use`: a request with this "
        "`Idempotency-Key` is still in flight; retry later to get its result."
    ),
    422: OpenApiResponse(
        description="`idempotency_error` / `idempotency_key_reused`: this `Idempotency-Key` "
        "was used with a different request (another body or path)."
    ),
}


def _ttl() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def _lock_timeout() -> timedelta:
    return timedelta(seconds=settings.IDEMPOTENCY_KEY_LOCK_TIMEOUT_SECONDS)


def _in_use() -> ApiError:
    return ApiError(
        status_code=status.HTTP_409_CONFLICT,
        type="idempotency_error",
        code="idempotency_key_in_use",
        message="A request with this Idempotency-Key is still in flight; retry later.",
        param=HEADER,
    )


def _reused() -> ApiError:
    return ApiError(
        status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
        type="idempotency_error",
        code="idempotency_key_reused",
        message=(
            "This Idempotency-Key was already used with a different request "
            "(another body or path); use a new key for a new request."
        ),
        param=HEADER,
    )


def idempotency_key_from(request: Request) -> str | None:
    """The request's `Idempotency-Key`, None without one; 400 when it is malformed."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > KEY_MAX_LENGTH or not all(" " <= char <= "~" for char in key):
        raise ApiError(
            status_code=status.HTTP_400_BAD_REQUEST,
            type="invalid_request_error",
            code="parameter_invalid",
            message=f"{HEADER} must be 1 to {KEY_MAX_LENGTH} printable ASCII characters.",
            param=HEADER,
        )
    return key


def request_fingerprint(method: str, path: str, data: Any) -> str:
    """sha256 of the method, the path and the body as canonical JSON (keys sorted, no
    whitespace), so that key order and formatting do not make two requests differ."""
    if isinstance(data, QueryDict):
        data = {key: data.getlist(key) for key in data}
    canonical = json.dumps(
        [method.upper(), path, data],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class _Claim:
    """A key row this request holds: every later write to it is fenced on `token`."""

    pk: int
    token: uuid.UUID

    def _held(self) -> Any:
        return IdempotencyKey.objects.filter(
            pk=self.pk, lock_token=self.token, state=IdempotencyKeyState.IN_FLIGHT
        )

    def complete(self, *, status_code: int, body: bytes, content_type: str) -> bool:
        """Store the response; False when the key is no longer ours (taken over)."""
        return bool(
            update_rows(
                IdempotencyKey,
                {"id": self.pk, "lock_token": self.token, "state": IdempotencyKeyState.IN_FLIGHT},
                state=IdempotencyKeyState.COMPLETED,
                response_status=status_code,
                response_body=body,
                response_content_type=content_type,
                completed_at=timezone.now(),
                locked_at=None,
                holder_pid=None,
                holder_started_at=None,
            )
        )

    def release(self) -> None:
        """Forget the key, so that a retry (even with a corrected body) starts afresh."""
        self._held().delete()


def _replay(row: IdempotencyKey) -> HttpResponse:
    assert row.response_status is not None  # noqa: S101 - the check constraint holds it
    response = HttpResponse(
        bytes(row.response_body or b""),
        status=row.response_status,
        content_type=row.response_content_type or "application/json",
    )
    response[REPLAYED_HEADER] = "true"
    return response


def idempotency_key_claim(
    *, merchant: Any, key: str, fingerprint: str, method: str, path: str
) -> _Claim | HttpResponse:
    """Phase 1: hold `(merchant, key)` for this request, committed before any work starts.

    Returns the claim, or the stored response to replay; raises the 409 / 422 errors.
    """
    # Whose the claim is: this connection's server session, which phase 2 runs on too.
    session = session_current()
    holder = {
        "holder_pid": session.pid if session else None,
        "holder_started_at": session.started_at if session else None,
    }
    for _ in range(_CLAIM_ATTEMPTS):
        now = timezone.now()
        token = uuid.uuid4()
        # ON CONFLICT DO NOTHING: of two simultaneous inserts one wins, the other waits
        # for it to commit and then inserts nothing.
        claimed = IdempotencyKey(
            merchant=merchant,
            key=key,
            fingerprint=fingerprint,
            request_method=method,
            request_path=path[:2048],
            state=IdempotencyKeyState.IN_FLIGHT,
            lock_token=token,
            locked_at=now,
            created_at=now,
            **holder,
        )
        if insert_rows([claimed], ignore_conflicts=True):
            return _Claim(claimed.pk, token)  # a new key, the common case
        row = IdempotencyKey.objects.filter(merchant=merchant, key=key).first()
        if row is None:  # released by its holder in between: claim again
            continue
        if row.lock_token == token and row.state == IdempotencyKeyState.IN_FLIGHT:
            return _Claim(row.pk, token)
        if _retained_since(row) <= now - _ttl():
            # Past the retention window the key counts as new (as if already purged).
            IdempotencyKey.objects.filter(
                pk=row.pk, state=row.state, lock_token=row.lock_token
            ).delete()
            continue
        if row.fingerprint != fingerprint:
            raise _reused()
        if row.state == IdempotencyKeyState.COMPLETED:
            return _replay(row)
        if row.locked_at is not None and row.locked_at > now - _lock_timeout():
            if _holder_alive(row):
                raise _in_use()
            why = "its holder's database session is gone"
        else:
            why = "a stale lock"
        # The holder died (its session is gone: nothing of its work can commit), or has
        # not finished within the lock timeout (it crashed or stalled). Take the key over;
        # if the old holder ever tries to complete, its fenced UPDATE matches nothing and
        # its work rolls back.
        taken = IdempotencyKey.objects.filter(
            pk=row.pk,
            state=IdempotencyKeyState.IN_FLIGHT,
            lock_token=row.lock_token,
            locked_at=row.locked_at,
        ).update(lock_token=token, locked_at=now, **holder)
        if taken:
            logger.warning("idempotency key %s taken over: %s", row.pk, why)
            return _Claim(row.pk, token)
    raise _in_use()


def _holder_alive(row: IdempotencyKey) -> bool:
    """Whether an in-flight key's holder may still complete it: its PostgreSQL session still
    runs. Without a recorded session (SQLite) only the lock timeout tells."""
    if row.holder_pid is None or row.holder_started_at is None:
        return True
    return session_alive(Session(row.holder_pid, row.holder_started_at))


def _retained_since(row: IdempotencyKey) -> datetime:
    """When a key's retention started: its completion (so that a key taken over and
    completed late is still kept a whole window), or, while in flight, its last claim."""
    if row.state == IdempotencyKeyState.COMPLETED and row.completed_at is not None:
        return row.completed_at
    return row.locked_at or row.created_at


def _stores(response: HttpResponseBase) -> bool:
    """Whether a response is the request's outcome, to be replayed: a success, or a
    decline (402) that recorded a failed object. Any other error means nothing was done."""
    code = response.status_code
    return code < 400 or code == status.HTTP_402_PAYMENT_REQUIRED


def _render(view: APIView, request: Request, response: HttpResponseBase) -> bytes:
    """The exact bytes the client will receive (DRF renders the same way, later)."""
    if isinstance(response, Response) and not response.is_rendered:
        response.accepted_renderer = request.accepted_renderer
        response.accepted_media_type = request.accepted_media_type
        response.renderer_context = view.get_renderer_context()  # type: ignore[attr-defined]
        response.render()
    return bytes(response.content)  # type: ignore[attr-defined]


class _Discard(Exception):
    """Roll the phase back and answer `response` without storing it."""

    def __init__(self, response: HttpResponseBase):
        super().__init__(response.status_code)
        self.response = response


class _LostLock(Exception):
    """The key was taken over while this request ran: its work must not commit."""


def _work_and_complete(
    view: APIView, request: Request, claim: _Claim, run: Callable[[], HttpResponseBase]
) -> HttpResponseBase:
    """Phase 2: the view's work and the stored response commit together, or neither."""

    def phase() -> HttpResponseBase:
        # The one transaction an interface opens around a service (ADR 0006): the
        # service's own atomic blocks become savepoints inside it.
        with transaction.atomic():
            try:
                response = run()
            except Exception as error:
                if is_lock_conflict(error):
                    raise  # the whole phase is retried below
                response = view.handle_exception(error)
            if transaction.get_rollback():
                # Something inside caught an error that doomed the transaction: the work
                # will not commit, whatever the response says.
                raise _Discard(
                    view.handle_exception(RuntimeError("the transaction was marked for rollback"))
                )
            if not _stores(response):
                raise _Discard(response)
            body = _render(view, request, response)
            if not claim.complete(
                status_code=response.status_code,
                body=body,
                content_type=response.get("Content-Type", "application/json"),
            ):
                raise _LostLock()
        return response

    try:
        # Outside any atomic block a deadlock or serialization failure reruns the phase
        # (the service's own retry cannot act inside this outer transaction).
        return retry_on_conflict(phase)()
    except _Discard as discard:
        claim.release()
        return discard.response
    except _LostLock:
        logger.warning("idempotency key %s was taken over; this request rolled back", claim.pk)
        raise _in_use() from None
    except Exception:
        claim.release()
        raise


V = TypeVar("V", bound=Callable[..., Any])


def _document(view_method: Any) -> None:
    """Add the header and the 409 / 422 answers to the method's schema, on top of what its
    own `@extend_schema` (applied before, i.e. below this decorator) says."""
    # functools.wraps shared the wrapped method's `kwargs` dict (an @action's too): copy it.
    view_method.kwargs = dict(getattr(view_method, "kwargs", None) or {})
    base = view_method.kwargs.get("schema") or api_settings.DEFAULT_SCHEMA_CLASS
    if not isinstance(base, type):
        base = type(base)

    class IdempotentSchema(base):  # type: ignore[valid-type,misc]
        def get_override_parameters(self) -> list[Any]:
            return [*super().get_override_parameters(), IDEMPOTENCY_KEY_PARAMETER]

        def get_response_serializers(self) -> Any:
            responses = super().get_response_serializers()
            if not isinstance(responses, dict):
                code = 201 if self._is_create_operation() else 200
                responses = {code: responses}
            return {**responses, **IDEMPOTENCY_RESPONSES}

    view_method.kwargs["schema"] = IdempotentSchema


def idempotent(view_method: V) -> V:
    """Make a POST view method of a MerchantScopedViewSet honour `Idempotency-Key` (see the
    module docstring)."""

    @functools.wraps(view_method)
    def wrapper(
        view: MerchantScopedViewSet, request: Request, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        key = idempotency_key_from(request)
        if key is None:
            return cast(HttpResponseBase, view_method(view, request, *args, **kwargs))
        method, path = request.method or "POST", request.path
        # Parsing the body here: a malformed body is a 400 before any key is claimed.
        fingerprint = request_fingerprint(method, path, request.data)
        claim = idempotency_key_claim(
            merchant=view.merchant,
            key=key,
            fingerprint=fingerprint,
            method=method,
            path=path,
        )
        if isinstance(claim, HttpResponse):
            return claim
        return _work_and_complete(
            view, request, claim, lambda: view_method(view, request, *args, **kwargs)
        )

    _document(wrapper)
    return cast(V, wrapper)
