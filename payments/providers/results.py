"""The ProviderResults both adapters build the same way: declines through the decline
table, errors (known not done) and unknown outcomes (maybe done), and the check that an
answer is about what was asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payments.providers.base import DeclineClass, ProviderResult, ResultStatus
from payments.providers.declines import decline_lookup


def result_declined(
    *,
    provider: str,
    code: str,
    reference: str = "",
    http_status: int | None = None,
    raw: Mapping[str, Any] | None = None,
) -> ProviderResult:
    """A refusal, classed by the decline table (a temporary class is an ERROR: retried)."""
    decline = decline_lookup(provider=provider, code=code)
    temporary = decline.decline_class == DeclineClass.TEMPORARY
    return ProviderResult(
        status=ResultStatus.ERROR if temporary else ResultStatus.DECLINED,
        reference=reference,
        decline_class=decline.decline_class,
        failure_code=decline.failure_code,
        failure_message=decline.message,
        http_status=http_status,
        raw=raw or {},
    )


def result_error(
    *,
    code: str,
    message: str,
    http_status: int | None = None,
    retry_after: float | None = None,
    raw: Mapping[str, Any] | None = None,
) -> ProviderResult:
    """Not done, and known not done: the same call may be made again."""
    return ProviderResult(
        status=ResultStatus.ERROR,
        decline_class=DeclineClass.TEMPORARY,
        failure_code=code,
        failure_message=message,
        http_status=http_status,
        retry_after=retry_after,
        raw=raw or {},
    )


def result_unknown(
    *,
    code: str,
    message: str,
    reference: str = "",
    http_status: int | None = None,
    raw: Mapping[str, Any] | None = None,
) -> ProviderResult:
    """Maybe done: ask again with the same idempotency key, or retrieve. Never a success."""
    return ProviderResult(
        status=ResultStatus.UNKNOWN,
        reference=reference,
        decline_class=DeclineClass.TEMPORARY,
        failure_code=code,
        failure_message=message,
        http_status=http_status,
        raw=raw or {},
    )


def result_not_found(*, message: str) -> ProviderResult:
    """The provider has no object for what was asked (retrieve by idempotency key)."""
    return result_unknown(code="not_found", message=message)


def result_checked(
    result: ProviderResult, *, amount: int, currency: str, captured: bool = False
) -> ProviderResult:
    """`result`, unless it is an answer about another amount or currency than was asked
    (the captured amount for a capture): then an unknown outcome (`amount_mismatch`),
    never a success. Refusals and errors carry no amount to check."""
    if result.status in (ResultStatus.DECLINED, ResultStatus.ERROR, ResultStatus.UNKNOWN):
        return result
    answered = result.amount_captured if captured else result.amount
    if answered == amount and result.currency == currency.upper():
        return result
    return result_unknown(
        code="amount_mismatch",
        message=(
            f"The provider answered {answered} {result.currency or '(no currency)'}, "
            f"asked {amount} {currency.upper()}."
        ),
        reference=result.reference,
        http_status=result.http_status,
        raw=result.raw,
    )
