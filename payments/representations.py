"""The public shape of payments' objects: event payloads and audit values use it."""

from typing import Any

from payments.fx import rate_text
from payments.models import FxQuote, Transfer


def transfer_data(transfer: Transfer) -> dict[str, Any]:
    return {
        "id": transfer.public_id,
        "object": "transfer",
        "source_account": transfer.source_account.public_id,
        "destination_account": transfer.destination_account.public_id,
        "amount": transfer.amount,
        "currency": transfer.currency,
        "destination_amount": transfer.destination_amount,
        "destination_currency": transfer.destination_currency,
        "fx_quote": transfer.fx_quote.public_id if transfer.fx_quote else None,
        "fx_rate": rate_text(transfer.fx_rate) if transfer.fx_rate is not None else None,
        "status": transfer.status,
        "failure_code": transfer.failure_code or None,
        "failure_message": transfer.failure_message or None,
        "description": transfer.description,
        "metadata": transfer.metadata,
        "ledger_transaction": (
            transfer.ledger_transaction.public_id if transfer.ledger_transaction else None
        ),
        "reversal": transfer.reversal.public_id if transfer.reversal else None,
        "created": transfer.created_at,
    }


def fx_quote_data(quote: FxQuote) -> dict[str, Any]:
    return {
        "id": quote.public_id,
        "object": "fx_quote",
        "source_currency": quote.source_currency,
        "destination_currency": quote.destination_currency,
        "rate": rate_text(quote.rate),
        "expires_at": quote.expires_at,
        "created": quote.created_at,
    }
