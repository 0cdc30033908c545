"""The settlement report both providers send (docs/providers.md, "Settlement report"):
CSV with a header row `provider_reference,type,amount,fee,currency,status,date`."""

from __future__ import annotations

import csv
import datetime
import io

from payments.providers.base import SettlementLine, SettlementReportError
from payments.providers.transport import RawResponse

HEADER = ["provider_reference", "type", "amount", "fee", "currency", "status", "date"]
TYPES = frozenset({"charge", "refund", "payout"})


def _minor_units(value: str, *, field: str, where: str) -> int:
    # Digits only (an optional minus for a reversal), no spaces, no decimal point.
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()):
        raise SettlementReportError(f"{where}: {field} {value!r} is not an integer")
    return int(value)


def settlement_report_parse(text: str, *, provider: str) -> list[SettlementLine]:
    """The lines of a settlement report; SettlementReportError naming the first line (and
    field) that is not well-formed."""
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows, None)
        if header != HEADER:
            raise SettlementReportError(
                f"{provider} settlement report: the header is {header!r}, expected {HEADER!r}"
            )
        lines = []
        for row in rows:
            where = f"{provider} settlement report line {rows.line_num}"
            if len(row) != len(HEADER):
                raise SettlementReportError(f"{where}: {len(row)} fields, expected {len(HEADER)}")
            reference, kind, amount, fee, currency, status, date = row
            if not reference:
                raise SettlementReportError(f"{where}: provider_reference is empty")
            if kind not in TYPES:
                raise SettlementReportError(f"{where}: type {kind!r} is not one of {sorted(TYPES)}")
            if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
                raise SettlementReportError(f"{where}: currency {currency!r} is not ISO 4217")
            if not status:
                raise SettlementReportError(f"{where}: status is empty")
            try:
                day = datetime.date.fromisoformat(date)
            except ValueError as error:
                raise SettlementReportError(f"{where}: date {date!r} is not ISO") from error
            lines.append(
                SettlementLine(
                    reference=reference,
                    type=kind,
                    amount=_minor_units(amount, field="amount", where=where),
                    fee=_minor_units(fee, field="fee", where=where),
                    currency=currency.upper(),
                    status=status,
                    date=day,
                )
            )
    except csv.Error as error:
        raise SettlementReportError(
            f"{provider} settlement report line {rows.line_num}: {error}"
        ) from error
    return lines


def settlement_lines(*, provider: str, raw: RawResponse) -> list[SettlementLine]:
    """The report in a provider's answer; SettlementReportError for any other answer."""
    if raw.status_code != 200:
        raise SettlementReportError(
            f"{provider}: the settlement report was answered {raw.status_code}"
        )
    try:
        text = raw.body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SettlementReportError(f"{provider}: the settlement report is not UTF-8") from error
    return settlement_report_parse(text, provider=provider)
