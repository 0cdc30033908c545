"""The provider adapter interface: what the payments domain asks of any provider, and the
shapes of its answers. Each adapter (payments/providers/stripe.py, adyen.py) maps its own
wire format onto these; nothing outside payments/providers/ sees a provider's format.

An adapter never raises for an answer it understood: a decline, an error the provider
reported and an outcome it cannot know (timeout, reset, a malformed or mismatching answer)
all come back as a `ProviderResult`. It raises only for programming errors, from
`webhook_parse` `WebhookInvalid`, and from `settlement_report` `SettlementReportError`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class DeclineClass(StrEnum):
    """SPEC §3: how a refusal may be retried."""

    SOFT = "soft"  # insufficient funds, over limit: the customer may retry later
    HARD = "hard"  # expired card, closed account: never retry
    FRAUD = "fraud"  # never retry
    TEMPORARY = "temporary"  # timeout, 5xx, rate limit: the task retries with backoff


class ResultStatus(StrEnum):
    """Where the provider says the operation stands."""

    SUCCEEDED = "succeeded"  # captured (an automatic-capture payment, a capture), canceled
    # (a cancel), refunded, paid out: the operation is done
    REQUIRES_CAPTURE = "requires_capture"  # authorized, waiting for a capture
    PENDING = "pending"  # accepted; the outcome comes later (webhook or retrieve)
    DECLINED = "declined"  # refused for good: decline_class soft, hard or fraud
    CANCELED = "canceled"  # an authorization released (also when retrieved)
    FAILED = "failed"  # a refund or payout the provider reports failed
    ERROR = "error"  # not done, known not done (decline_class temporary): retry the same call
    UNKNOWN = "unknown"  # may or may not be done: retry with the same idempotency key, or retrieve


class OperationKind(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    CANCEL = "cancel"
    REFUND = "refund"
    PAYOUT = "payout"
    RETRIEVE = "retrieve"


@dataclass(frozen=True)
class ProviderResult:
    """One answer of a provider, already mapped to our vocabulary."""

    status: ResultStatus
    # The provider's id of the object (Stripe's pi_…/re_…/po_…, Adyen's pspReference);
    # empty when the provider gave none (an error before anything was created, unknown).
    reference: str = ""
    # What the provider says it did, in minor units; None when it did not say.
    amount: int | None = None
    currency: str = ""  # upper case
    amount_capturable: int | None = None
    amount_captured: int | None = None
    decline_class: DeclineClass | None = None  # set for DECLINED, ERROR and UNKNOWN
    failure_code: str = ""  # our code: card_declined, insufficient_funds, expired_card,
    # fraudulent, provider_unavailable, rate_limited, timeout, invalid_response, ...
    failure_message: str = ""
    retry_after: float | None = None  # seconds, when the provider said so
    http_status: int | None = None
    # What the provider answered, for the attempt's record (never card data).
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderEvent:
    """An inbound webhook, verified and parsed."""

    provider: str
    event_id: str  # the provider's id, unique per provider: the deduplication key
    type: str  # the provider's event type, e.g. payment_intent.succeeded, AUTHORISATION
    kind: OperationKind  # which of our operations it reports on
    reference: str  # the provider's object id
    result: ProviderResult
    created: datetime.datetime
    raw: Mapping[str, Any] = field(default_factory=dict)
    # Our attempt's public id (its idempotency key) as the provider echoes it (Stripe's
    # metadata moneta_attempt, Adyen's merchantReference); empty when it does not.
    attempt_reference: str = ""


@dataclass(frozen=True)
class SettlementLine:
    """One line of a provider's daily settlement report."""

    reference: str
    type: str  # charge | refund | payout
    amount: int
    fee: int
    currency: str
    status: str
    date: datetime.date


class WebhookInvalid(Exception):
    """An inbound webhook that is not the provider's (bad or missing signature), too old,
    too large or malformed. `reason` says which, for the log; the caller answers 4xx."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SettlementReportError(Exception):
    """A settlement report that could not be fetched, or is not a well-formed report (the
    message names the line and the field)."""


class ProviderAdapter(Protocol):
    """One provider. `idempotency_key` is the attempt's id: the same key always means the
    same operation at the provider, so a call repeated with it never acts twice."""

    name: str  # "stripe" | "adyen"
    webhook_signature_headers: tuple[str, ...]  # kept with a stored webhook

    def authorize(
        self,
        *,
        idempotency_key: str,
        amount: int,
        currency: str,
        payment_method: str,
        capture: bool,  # True: automatic capture (SUCCEEDED); False: REQUIRES_CAPTURE
        reference: str,  # our payment id, for the provider's records
    ) -> ProviderResult: ...

    def capture(
        self, *, idempotency_key: str, reference: str, amount: int, currency: str
    ) -> ProviderResult: ...

    def cancel(self, *, idempotency_key: str, reference: str) -> ProviderResult: ...

    def refund(
        self,
        *,
        idempotency_key: str,
        payment_reference: str,
        amount: int,
        currency: str,
        reference: str,  # our refund id
    ) -> ProviderResult: ...

    def payout(
        self,
        *,
        idempotency_key: str,
        amount: int,
        currency: str,
        destination: str,  # a bank token, ba_…
        reference: str,  # our payout id
    ) -> ProviderResult: ...

    def retrieve(
        self, *, kind: OperationKind, reference: str = "", idempotency_key: str = ""
    ) -> ProviderResult:
        """Where an object stands now: by the provider's `reference`, or, when the first
        call's answer was lost, by the attempt's `idempotency_key` (ResultStatus.UNKNOWN
        with failure_code `not_found` when the provider has no such object)."""
        ...

    def webhook_parse(self, *, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        """Verify an inbound webhook (signature, timestamp tolerance, size) and parse it;
        raises WebhookInvalid. A list: some providers batch several events in one POST."""
        ...

    def settlement_report(self, *, date: datetime.date) -> list[SettlementLine]:
        """The provider's settlement report of `date`; raises SettlementReportError."""
        ...

    def close(self) -> None:
        """Close its connections (the registry's adapters_reset)."""
        ...
