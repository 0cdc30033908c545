"""The daily settlement report as CSV, the same columns for both providers."""

import csv
import datetime
import io

from simulator.app import Call, Response
from simulator.engine import Engine, EngineError

COLUMNS = ("provider_reference", "type", "amount", "fee", "currency", "status", "date")


def report_csv(engine: Engine, call: Call, provider: str) -> Response:
    """`?date=YYYY-MM-DD` (UTC): the report's CSV, a header row first."""
    try:
        date = datetime.date.fromisoformat(call.params.get("date", ""))
    except ValueError:
        raise EngineError(
            "invalid", "parameter_invalid", "date: a day as YYYY-MM-DD.", "date"
        ) from None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in engine.settlement_report(call.tx, provider=provider, date=date, now=call.now):
        writer.writerow(
            (
                row.reference,
                row.type,
                row.amount,
                row.fee,
                row.currency,
                row.status,
                row.date.isoformat(),
            )
        )
    return Response(200, out.getvalue().encode(), content_type="text/csv; charset=utf-8")
