"""A circuit breaker per provider (pybreaker): after PROVIDER_CIRCUIT_FAILURES failed calls
in a row it opens, and calls are not made (ERROR `circuit_open`) until
PROVIDER_CIRCUIT_RESET_SECONDS have passed; then the next call is a trial that closes it
again or opens it for another period.

A failed call is an ERROR or UNKNOWN result (the provider did not answer, or answered
something we could not use); a decline, "no such object" or "key used for another request"
is an answer and counts as a success. The state lives in Redis (shared by every worker,
and what an operator's `provider_circuit` command sees and sets) or, in the demo, in each
process's memory (PROVIDER_CIRCUIT_STORAGE).

pybreaker's `call` holds the breaker's lock while the guarded function runs; a provider
call must not hold a lock that other threads wait on for seconds, so the call is made
outside, and only its outcome goes through the breaker.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pybreaker
import redis
from django.conf import settings
from django.utils import timezone

from payments.providers.base import DeclineClass, ProviderResult, ResultStatus

logger = logging.getLogger(__name__)

REDIS_NAMESPACE = "moneta:provider_circuit"


class _CallFailed(Exception):
    """What the breaker sees of a failed call."""


class _RedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, whose every operation falls back to a closed circuit
    when Redis does not answer; its constructor too (pybreaker's raises)."""

    def _initialize_redis_state(self, state: str) -> None:
        try:
            super()._initialize_redis_state(state)
        except redis.RedisError:
            logger.warning("Redis did not answer: the provider circuit is taken as closed")


class _StateLog(pybreaker.CircuitBreakerListener):
    """Logs each change of a breaker's state (as this process sees it)."""

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        logger.warning(
            "provider circuit %s",
            new_state.name,
            extra={"provider": cb.name, "previous": old_state.name if old_state else ""},
        )


def _storage(provider: str) -> pybreaker.CircuitBreakerStorage:
    if settings.PROVIDER_CIRCUIT_STORAGE == "memory":
        return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    return _RedisStorage(pybreaker.STATE_CLOSED, client, namespace=f"{REDIS_NAMESPACE}:{provider}")


_breakers: dict[str, pybreaker.CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def circuit_breaker(provider: str) -> pybreaker.CircuitBreaker:
    """The breaker of `provider`, one per process (its state may be shared: see above)."""
    with _breakers_lock:
        breaker = _breakers.get(provider)
        if breaker is None:
            breaker = _breakers[provider] = pybreaker.CircuitBreaker(
                fail_max=settings.PROVIDER_CIRCUIT_FAILURES,
                reset_timeout=settings.PROVIDER_CIRCUIT_RESET_SECONDS,
                state_storage=_storage(provider),
                name=provider,
                listeners=[_StateLog()],
                # Opening raises the call's own _CallFailed: ignored like any failure.
                throw_new_error_on_trip=False,
            )
        return breaker


def circuit_breakers_forget() -> None:
    """Forget the breakers made from the settings (their shared state stays in Redis)."""
    with _breakers_lock:
        _breakers.clear()


def _forget_after_fork() -> None:
    # A forked child (a prefork worker) makes its own breakers; the parent's lock may have
    # been held by another thread at the fork.
    global _breakers_lock
    _breakers_lock = threading.Lock()
    _breakers.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


# Unknown outcomes that are well-formed answers of a working provider: "no such object",
# and "this key was used for another request" (our mistake, not its outage).
_ANSWERS = frozenset({"not_found", "idempotency_error"})


def call_failed(result: ProviderResult) -> bool:
    """Whether `result` counts against the provider: an error or an unknown outcome that
    is not one of its well-formed answers."""
    return (
        result.status in (ResultStatus.ERROR, ResultStatus.UNKNOWN)
        and result.failure_code not in _ANSWERS
    )


def _open_until(breaker: pybreaker.CircuitBreaker) -> datetime.datetime | None:
    """When an open circuit lets a trial call through; None when it is not open."""
    if breaker.current_state != pybreaker.STATE_OPEN:
        return None
    opened_at = breaker._state_storage.opened_at
    if opened_at is None:  # opened by another process whose timestamp did not reach Redis
        return timezone.now() + datetime.timedelta(seconds=breaker.reset_timeout)
    return opened_at + datetime.timedelta(seconds=breaker.reset_timeout)


def circuit_allows_call(provider: str) -> bool:
    """Whether a call to `provider` would be made now (closed, half-open, or open with its
    reset time passed: the trial)."""
    open_until = _open_until(circuit_breaker(provider))
    return open_until is None or timezone.now() >= open_until


def circuit_guard(provider: str, call: Callable[[], ProviderResult]) -> ProviderResult:
    """`call`'s result, its outcome counted by `provider`'s breaker; when the circuit is
    open, ERROR `circuit_open` without calling."""
    breaker = circuit_breaker(provider)
    open_until = _open_until(breaker)
    now = timezone.now()
    if open_until is not None and now < open_until:
        return ProviderResult(
            status=ResultStatus.ERROR,
            decline_class=DeclineClass.TEMPORARY,
            failure_code="circuit_open",
            failure_message=f"{provider} is unavailable: its circuit breaker is open.",
            retry_after=(open_until - now).total_seconds(),
        )
    result = call()

    def outcome() -> None:
        if call_failed(result):
            raise _CallFailed(result.failure_code)

    # Counted; or another call opened the circuit meanwhile and this outcome is moot.
    with contextlib.suppress(_CallFailed, pybreaker.CircuitBreakerError):
        breaker.call(outcome)
    return result


CircuitStateName = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class CircuitStatus:
    """Where a provider's breaker stands."""

    provider: str
    state: CircuitStateName
    failures: int  # failed calls in a row
    open_until: datetime.datetime | None  # when an open circuit lets a trial call through


def circuit_status(provider: str) -> CircuitStatus:
    """The state of `provider`'s breaker, for operators, tests and routing."""
    breaker = circuit_breaker(provider)
    state: CircuitStateName = breaker.current_state  # type: ignore[assignment]
    return CircuitStatus(
        provider=provider,
        state=state,
        failures=breaker.fail_counter,
        open_until=_open_until(breaker),
    )


def circuit_force(provider: str, *, state: Literal["open", "closed"]) -> CircuitStatus:
    """Open `provider`'s circuit (calls stop for PROVIDER_CIRCUIT_RESET_SECONDS; new
    payments fail over) or close it (and forget its failures)."""
    breaker = circuit_breaker(provider)
    if state == "open":
        breaker.open()
    else:
        breaker.close()
        breaker._state_storage.reset_counter()
    return circuit_status(provider)
