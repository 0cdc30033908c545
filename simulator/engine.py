"""The rules, one copy behind both wire formats (stripe_api.py and adyen_api.py translate).

Every operation runs inside a store transaction (`tx`) that the caller opened; an
operation refused before it did anything raises EngineError, which the caller answers in
its own format. Asynchronous outcomes (pm_card_async, refunds, payouts) settle lazily
whenever an object is read, and when `settle_due` runs (the HTTP server's background thread);
settling an object emits an event, which the caller may turn into a webhook."""

import datetime
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

# SPEC §4.6. What each test payment method does on its first call.
APPROVE, DECLINE, TIMEOUT, FLAKY, ASYNC = "approve", "decline", "timeout", "flaky", "async"
PAYMENT_METHODS: dict[str, tuple[str, str]] = {
    "pm_card_visa": (APPROVE, ""),
    "pm_card_declined": (DECLINE, "card_declined"),
    "pm_card_insufficient_funds": (DECLINE, "insufficient_funds"),
    "pm_card_expired": (DECLINE, "expired_card"),
    "pm_card_fraud": (DECLINE, "fraudulent"),
    "pm_card_timeout": (TIMEOUT, ""),
    "pm_card_flaky": (FLAKY, ""),
    "pm_card_async": (ASYNC, ""),
}
PAYOUT_DESTINATIONS = {"ba_ok": "paid", "ba_fail": "failed"}
MAX_AMOUNT = 99_999_999  # Stripe's own ceiling, in minor units

FEE_RATE = Decimal("0.029")
FEE_FIXED = 30


def provider_fee(amount: int) -> int:
    """The provider's fee on a charge: 2.9 % + 30 minor units, the percentage rounded half to
    even."""
    return int((Decimal(amount) * FEE_RATE).quantize(Decimal(1), ROUND_HALF_EVEN)) + FEE_FIXED


class EngineError(Exception):
    """An operation refused before it did anything. `kind`: invalid (bad parameters),
    missing (no such object), state (not allowed in the object's state), flaky (the
    pm_card_flaky 500)."""

    def __init__(
        self,
        kind: Literal["invalid", "missing", "state", "flaky"],
        code: str,
        message: str,
        param: str = "",
    ):
        super().__init__(message)
        self.kind, self.code, self.message, self.param = kind, code, message, param


@dataclass(frozen=True)
class Payment:
    """A payment (Stripe's PaymentIntent, Adyen's payment)."""

    id: str
    provider: str
    idempotency_key: str
    attempt: str
    amount: int
    currency: str
    payment_method: str
    capture_method: str
    status: str
    decline_reason: str
    amount_capturable: int
    amount_received: int
    amount_refunded: int
    metadata: dict[str, str]
    created: float
    settle_at: float | None
    captured_at: float | None
    canceled_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Payment":
        return cls(**{**dict(row), "metadata": json.loads(row["metadata"])})


@dataclass(frozen=True)
class Modification:
    """A capture or a cancel of a payment (Adyen gives each its own pspReference)."""

    id: str
    provider: str
    payment_id: str
    type: str
    amount: int
    reference: str
    created: float


@dataclass(frozen=True)
class Refund:
    """A refund of (part of) a captured payment."""

    id: str
    provider: str
    payment_id: str
    attempt: str
    amount: int
    currency: str
    status: str
    outcome: str
    metadata: dict[str, str]
    created: float
    settle_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Refund":
        return cls(**{**dict(row), "metadata": json.loads(row["metadata"])})


@dataclass(frozen=True)
class Payout:
    """Money sent to a bank destination (ba_ok, ba_fail)."""

    id: str
    provider: str
    attempt: str
    amount: int
    currency: str
    destination: str
    status: str
    outcome: str
    metadata: dict[str, str]
    created: float
    settle_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Payout":
        return cls(**{**dict(row), "metadata": json.loads(row["metadata"])})


@dataclass(frozen=True)
class SettlementRow:
    """One line of the daily settlement report."""

    reference: str
    type: str
    amount: int
    fee: int
    currency: str
    status: str
    date: datetime.date


Obj = Payment | Refund | Payout
Kind = Literal["payment", "refund", "payout"]
# (tx, event, object, capture or cancel) -> None. Events: payment.settled, payment.captured,
# payment.canceled, refund.settled, payout.settled.
EventSink = Callable[[sqlite3.Connection, str, Obj, Modification | None], None]

FAULT_COUNTS = ("unavailable", "rate_limited", "drop_after_commit", "invalid_json")
FAULT_FIELDS = ("latency_ms", *FAULT_COUNTS, "retry_after", "refund_failure")


class Engine:
    """The rules. `new_id(provider, kind)` names objects in each provider's style;
    `on_event` hears of every settled or modified object (None: nobody listens)."""

    def __init__(
        self,
        *,
        async_seconds: float,
        new_id: Callable[[str, str], str],
        on_event: EventSink | None = None,
    ):
        self.async_seconds = async_seconds
        self.new_id = new_id
        self.on_event = on_event

    def _emit(self, tx: sqlite3.Connection, event: str, obj: Obj, mod: Modification | None) -> None:
        if self.on_event is not None:
            self.on_event(tx, event, obj, mod)

    # Payments

    def create_payment(
        self,
        tx: sqlite3.Connection,
        *,
        provider: str,
        idempotency_key: str,
        amount: int,
        currency: str,
        payment_method: str,
        capture: bool,
        attempt: str,
        metadata: dict[str, str],
        now: float,
    ) -> tuple[Payment, bool]:
        """A payment, confirmed at once. Returns it and whether the answer must be withheld
        (pm_card_timeout: recorded, then no answer in time)."""
        check_amount(amount, "amount")
        if payment_method not in PAYMENT_METHODS:
            raise EngineError(
                "invalid",
                "resource_missing",
                f"No such PaymentMethod: '{payment_method}'",
                "payment_method",
            )
        behaviour, decline_reason = PAYMENT_METHODS[payment_method]
        if behaviour == FLAKY:
            # The first call for this payment (Moneta's payment id when it says it, otherwise
            # the idempotency key) fails before anything is done; any later one succeeds.
            flaky_key = metadata.get("moneta_reference") or idempotency_key
            seen = (
                tx.execute(
                    "INSERT OR IGNORE INTO flaky_seen (provider, key) VALUES (?, ?)",
                    (provider, flaky_key),
                ).rowcount
                == 0
            )
            if not seen:
                raise EngineError("flaky", "api_error", "An error occurred with our API (flaky).")
        status, capturable, received = "succeeded", 0, amount
        captured_at: float | None = now
        settle_at: float | None = None
        if behaviour == DECLINE:
            status, received, captured_at = "declined", 0, None
        elif behaviour == ASYNC:
            status, received, captured_at = "processing", 0, None
            settle_at = now + self.async_seconds
        elif not capture:
            status, capturable, received, captured_at = "requires_capture", amount, 0, None
        payment = Payment(
            id=self.new_id(provider, "payment"),
            provider=provider,
            idempotency_key=idempotency_key,
            attempt=attempt,
            amount=amount,
            currency=currency,
            payment_method=payment_method,
            capture_method="automatic" if capture else "manual",
            status=status,
            decline_reason=decline_reason,
            amount_capturable=capturable,
            amount_received=received,
            amount_refunded=0,
            metadata=metadata,
            created=now,
            settle_at=settle_at,
            captured_at=captured_at,
            canceled_at=None,
        )
        tx.execute(
            "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                payment.id,
                provider,
                idempotency_key,
                attempt,
                amount,
                currency,
                payment_method,
                payment.capture_method,
                status,
                decline_reason,
                capturable,
                received,
                0,
                json.dumps(metadata),
                now,
                settle_at,
                captured_at,
                None,
            ),
        )
        return payment, behaviour == TIMEOUT

    def get_payment(self, tx: sqlite3.Connection, provider: str, id: str, now: float) -> Payment:
        row = tx.execute(
            "SELECT * FROM payments WHERE id = ? AND provider = ?", (id, provider)
        ).fetchone()
        if row is None:
            raise EngineError("missing", "resource_missing", f"No such payment: '{id}'", "id")
        return self._settle_payment(tx, Payment.from_row(row), now)

    def _settle_payment(self, tx: sqlite3.Connection, payment: Payment, now: float) -> Payment:
        if payment.status != "processing" or payment.settle_at is None or payment.settle_at > now:
            return payment
        if payment.capture_method == "automatic":
            tx.execute(
                "UPDATE payments SET status = 'succeeded', amount_received = amount,"
                " captured_at = settle_at WHERE id = ?",
                (payment.id,),
            )
        else:
            tx.execute(
                "UPDATE payments SET status = 'requires_capture', amount_capturable = amount"
                " WHERE id = ?",
                (payment.id,),
            )
        settled = self._payment(tx, payment.id)
        self._emit(tx, "payment.settled", settled, None)
        return settled

    def _payment(self, tx: sqlite3.Connection, id: str) -> Payment:
        return Payment.from_row(tx.execute("SELECT * FROM payments WHERE id = ?", (id,)).fetchone())

    def capture(
        self,
        tx: sqlite3.Connection,
        *,
        provider: str,
        payment_id: str,
        amount: int | None,
        currency: str | None,
        reference: str,
        now: float,
    ) -> tuple[Payment, Modification]:
        """Capture `amount` (default: all that is capturable); the rest is released."""
        payment = self.get_payment(tx, provider, payment_id, now)
        if payment.status != "requires_capture":
            raise unexpected_state(payment, "captured")
        if currency is not None and currency != payment.currency:
            raise EngineError(
                "invalid",
                "parameter_invalid",
                f"The currency must be the payment's ({payment.currency}).",
                "currency",
            )
        amount = payment.amount_capturable if amount is None else amount
        check_amount(amount, "amount_to_capture")
        if amount > payment.amount_capturable:
            raise EngineError(
                "state",
                "amount_too_large",
                f"The amount to capture ({amount}) is more than the amount capturable"
                f" ({payment.amount_capturable}).",
                "amount_to_capture",
            )
        tx.execute(
            "UPDATE payments SET status = 'succeeded', amount_capturable = 0,"
            " amount_received = ?, captured_at = ? WHERE id = ?",
            (amount, now, payment.id),
        )
        return self._modify(tx, payment, "capture", amount, reference, now)

    def cancel(
        self, tx: sqlite3.Connection, *, provider: str, payment_id: str, reference: str, now: float
    ) -> tuple[Payment, Modification]:
        """Release an authorization."""
        payment = self.get_payment(tx, provider, payment_id, now)
        if payment.status != "requires_capture":
            raise unexpected_state(payment, "canceled")
        tx.execute(
            "UPDATE payments SET status = 'canceled', amount_capturable = 0, canceled_at = ?"
            " WHERE id = ?",
            (now, payment.id),
        )
        return self._modify(tx, payment, "cancel", payment.amount, reference, now)

    def _modify(
        self,
        tx: sqlite3.Connection,
        payment: Payment,
        type: str,
        amount: int,
        reference: str,
        now: float,
    ) -> tuple[Payment, Modification]:
        mod = Modification(
            self.new_id(payment.provider, type),
            payment.provider,
            payment.id,
            type,
            amount,
            reference,
            now,
        )
        tx.execute(
            "INSERT INTO modifications VALUES (?, ?, ?, ?, ?, ?, ?)",
            (mod.id, mod.provider, mod.payment_id, mod.type, mod.amount, mod.reference, now),
        )
        updated = self._payment(tx, payment.id)
        self._emit(
            tx, "payment.captured" if type == "capture" else "payment.canceled", updated, mod
        )
        return updated, mod

    # Refunds and payouts

    def create_refund(
        self,
        tx: sqlite3.Connection,
        *,
        provider: str,
        payment_id: str,
        amount: int | None,
        currency: str | None,
        attempt: str,
        metadata: dict[str, str],
        now: float,
    ) -> Refund:
        """A refund of at most what was captured and not yet refunded (default: all of it),
        pending until it settles."""
        payment = self.get_payment(tx, provider, payment_id, now)
        if payment.status != "succeeded":
            raise unexpected_state(payment, "refunded")
        left = payment.amount_received - payment.amount_refunded
        if left == 0:
            raise EngineError(
                "state", "charge_already_refunded", f"Payment {payment.id} is already refunded."
            )
        if currency is not None and currency != payment.currency:
            raise EngineError(
                "invalid",
                "parameter_invalid",
                f"The currency must be the payment's ({payment.currency}).",
                "currency",
            )
        amount = left if amount is None else amount
        check_amount(amount, "amount")
        if amount > left:
            raise EngineError(
                "state",
                "amount_too_large",
                f"Refund amount ({amount}) is greater than the amount left to refund ({left}).",
                "amount",
            )
        outcome = "failed" if self._take(tx, "refund_failure") else "succeeded"
        refund = Refund(
            id=self.new_id(provider, "refund"),
            provider=provider,
            payment_id=payment.id,
            attempt=attempt,
            amount=amount,
            currency=payment.currency,
            status="pending",
            outcome=outcome,
            metadata=metadata,
            created=now,
            settle_at=now + self.async_seconds,
        )
        tx.execute(
            "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                refund.id,
                provider,
                payment.id,
                attempt,
                amount,
                refund.currency,
                "pending",
                outcome,
                json.dumps(metadata),
                now,
                refund.settle_at,
            ),
        )
        tx.execute(
            "UPDATE payments SET amount_refunded = amount_refunded + ? WHERE id = ?",
            (amount, payment.id),
        )
        return refund

    def get_refund(self, tx: sqlite3.Connection, provider: str, id: str, now: float) -> Refund:
        row = tx.execute(
            "SELECT * FROM refunds WHERE id = ? AND provider = ?", (id, provider)
        ).fetchone()
        if row is None:
            raise EngineError("missing", "resource_missing", f"No such refund: '{id}'", "id")
        return self._settle_refund(tx, Refund.from_row(row), now)

    def _settle_refund(self, tx: sqlite3.Connection, refund: Refund, now: float) -> Refund:
        if refund.status != "pending" or refund.settle_at > now:
            return refund
        tx.execute("UPDATE refunds SET status = outcome WHERE id = ?", (refund.id,))
        if refund.outcome == "failed":  # the money stays with the merchant: refundable again
            tx.execute(
                "UPDATE payments SET amount_refunded = amount_refunded - ? WHERE id = ?",
                (refund.amount, refund.payment_id),
            )
        settled = Refund.from_row(
            tx.execute("SELECT * FROM refunds WHERE id = ?", (refund.id,)).fetchone()
        )
        self._emit(tx, "refund.settled", settled, None)
        return settled

    def create_payout(
        self,
        tx: sqlite3.Connection,
        *,
        provider: str,
        amount: int,
        currency: str,
        destination: str,
        attempt: str,
        metadata: dict[str, str],
        now: float,
    ) -> Payout:
        """A payout to ba_ok (paid) or ba_fail (failed), pending until it settles."""
        check_amount(amount, "amount")
        if destination not in PAYOUT_DESTINATIONS:
            raise EngineError(
                "invalid",
                "resource_missing",
                f"No such external account: '{destination}'",
                "destination",
            )
        payout = Payout(
            id=self.new_id(provider, "payout"),
            provider=provider,
            attempt=attempt,
            amount=amount,
            currency=currency,
            destination=destination,
            status="pending",
            outcome=PAYOUT_DESTINATIONS[destination],
            metadata=metadata,
            created=now,
            settle_at=now + self.async_seconds,
        )
        tx.execute(
            "INSERT INTO payouts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                payout.id,
                provider,
                attempt,
                amount,
                currency,
                destination,
                "pending",
                payout.outcome,
                json.dumps(metadata),
                now,
                payout.settle_at,
            ),
        )
        return payout

    def get_payout(self, tx: sqlite3.Connection, provider: str, id: str, now: float) -> Payout:
        row = tx.execute(
            "SELECT * FROM payouts WHERE id = ? AND provider = ?", (id, provider)
        ).fetchone()
        if row is None:
            raise EngineError("missing", "resource_missing", f"No such payout: '{id}'", "id")
        return self._settle_payout(tx, Payout.from_row(row), now)

    def _settle_payout(self, tx: sqlite3.Connection, payout: Payout, now: float) -> Payout:
        if payout.status != "pending" or payout.settle_at > now:
            return payout
        tx.execute("UPDATE payouts SET status = outcome WHERE id = ?", (payout.id,))
        settled = Payout.from_row(
            tx.execute("SELECT * FROM payouts WHERE id = ?", (payout.id,)).fetchone()
        )
        self._emit(tx, "payout.settled", settled, None)
        return settled

    # Lookups

    def find(
        self,
        tx: sqlite3.Connection,
        *,
        provider: str,
        kind: Kind,
        now: float,
        attempt: str | None = None,
        metadata: tuple[str, str] | None = None,
    ) -> list[Obj]:
        """Objects by the attempt they were created for, or by one metadata key's value."""
        table = {"payment": "payments", "refund": "refunds", "payout": "payouts"}[kind]
        if attempt is not None:
            where, args = "attempt = ?", [attempt]
        elif metadata is not None:
            where, args = "json_extract(metadata, '$.' || json_quote(?)) = ?", list(metadata)
        else:
            raise ValueError("find() needs an attempt or a metadata pair")
        rows = tx.execute(
            f"SELECT id FROM {table} WHERE provider = ? AND {where} ORDER BY created",  # noqa: S608
            [provider, *args],
        ).fetchall()
        ids = [row["id"] for row in rows]
        if kind == "payment":
            return [self.get_payment(tx, provider, id, now) for id in ids]
        if kind == "refund":
            return [self.get_refund(tx, provider, id, now) for id in ids]
        return [self.get_payout(tx, provider, id, now) for id in ids]

    def settle_due(self, tx: sqlite3.Connection, now: float) -> int:
        """Settle every asynchronous outcome that is due; how many."""
        count = 0
        for row in tx.execute(
            "SELECT * FROM payments WHERE status = 'processing' AND settle_at <= ?", (now,)
        ).fetchall():
            self._settle_payment(tx, Payment.from_row(row), now)
            count += 1
        for row in tx.execute(
            "SELECT * FROM refunds WHERE status = 'pending' AND settle_at <= ?", (now,)
        ).fetchall():
            self._settle_refund(tx, Refund.from_row(row), now)
            count += 1
        for row in tx.execute(
            "SELECT * FROM payouts WHERE status = 'pending' AND settle_at <= ?", (now,)
        ).fetchall():
            self._settle_payout(tx, Payout.from_row(row), now)
            count += 1
        return count

    # Reports and the admin

    def settlement_report(
        self, tx: sqlite3.Connection, *, provider: str, date: datetime.date, now: float
    ) -> list[SettlementRow]:
        """What the provider settled on `date` (UTC): charges captured that day (with the
        provider's fee), refunds and payouts created that day, each in its current status."""
        self.settle_due(tx, now)
        start = datetime.datetime.combine(date, datetime.time(), datetime.UTC).timestamp()
        end = start + 86400
        rows = [
            SettlementRow(
                r["id"],
                "charge",
                r["amount_received"],
                provider_fee(r["amount_received"]),
                r["currency"],
                "succeeded",
                date,
            )
            for r in tx.execute(
                "SELECT * FROM payments WHERE provider = ? AND captured_at >= ?"
                " AND captured_at < ? ORDER BY captured_at",
                (provider, start, end),
            )
        ]
        for table, type in (("refunds", "refund"), ("payouts", "payout")):
            rows += [
                SettlementRow(r["id"], type, r["amount"], 0, r["currency"], r["status"], date)
                for r in tx.execute(
                    f"SELECT * FROM {table} WHERE provider = ? AND created >= ?"  # noqa: S608
                    " AND created < ? ORDER BY created",
                    (provider, start, end),
                )
            ]
        return rows

    def charges(self, tx: sqlite3.Connection, *, by: Literal["key", "reference"]) -> dict[str, Any]:
        """How many charges (payments authorized: not declined) each idempotency key, or each
        Moneta payment (metadata moneta_reference), produced, per provider."""
        column = (
            "idempotency_key" if by == "key" else "json_extract(metadata, '$.moneta_reference')"
        )
        counts: dict[str, dict[str, int]] = {"stripe": {}, "adyen": {}}
        for row in tx.execute(
            f"SELECT provider, {column} AS k, count(*) AS n FROM payments"  # noqa: S608
            " WHERE status != 'declined' GROUP BY provider, k"
        ):
            counts.setdefault(row["provider"], {})[row["k"] or ""] = row["n"]
        return counts

    def faults(self, tx: sqlite3.Connection) -> dict[str, int]:
        row = tx.execute("SELECT * FROM faults WHERE id = 1").fetchone()
        return {name: row[name] for name in FAULT_FIELDS}

    def set_faults(self, tx: sqlite3.Connection, values: dict[str, int]) -> None:
        for name, value in values.items():
            if name not in FAULT_FIELDS:
                raise ValueError(name)
            tx.execute(f"UPDATE faults SET {name} = ? WHERE id = 1", (value,))  # noqa: S608

    def reset_faults(self, tx: sqlite3.Connection) -> None:
        tx.execute("DELETE FROM faults")
        tx.execute("INSERT INTO faults (id) VALUES (1)")

    def take_fault(self, tx: sqlite3.Connection) -> str:
        """The count fault the next provider call suffers ('' when none), one count spent;
        checked in the order unavailable, rate_limited, drop_after_commit, invalid_json."""
        for name in FAULT_COUNTS:
            if self._take(tx, name):
                return name
        return ""

    def _take(self, tx: sqlite3.Connection, name: str) -> bool:
        return (
            tx.execute(
                f"UPDATE faults SET {name} = {name} - 1 WHERE id = 1 AND {name} > 0"  # noqa: S608
            ).rowcount
            == 1
        )


def check_amount(amount: int, param: str) -> None:
    if amount < 1:
        raise EngineError(
            "invalid", "parameter_invalid_integer", "The amount must be a positive integer.", param
        )
    if amount > MAX_AMOUNT:
        raise EngineError(
            "invalid", "amount_too_large", f"The amount must be at most {MAX_AMOUNT}.", param
        )


def unexpected_state(payment: Payment, action: str) -> EngineError:
    return EngineError(
        "state",
        "unexpected_state",
        f"This payment's status is {payment.status}; it cannot be {action}.",
    )
