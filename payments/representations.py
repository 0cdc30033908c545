"""The public shape of payments' objects: event payloads and audit values use it."""

from typing import Any

from payments.fx import rate_text
from payments.models import FxQuote, Payment, PaymentAttempt, Payout, Refund, Transfer


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


def payment_data(payment: Payment) -> dict[str, Any]:
    """The payment as events and audit rows record it (the API adds its attempts and
    timeline)."""
    return {
        "id": payment.public_id,
        "object": "payment",
        "status": payment.status,
        "amount": payment.amount,
        "amount_capturable": payment.amount_capturable,
        "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded,
        "fee": payment.fee,
        "net": payment.net,
        "currency": payment.currency,
        "destination_account": payment.destination_account.public_id,
        "customer": payment.customer.public_id if payment.customer else None,
        "payment_method": payment.payment_method,
        "capture_method": payment.capture_method,
        "capture_before": payment.capture_before,
        "failure_code": payment.failure_code or None,
        "failure_message": payment.failure_message or None,
        "decline_class": payment.decline_class or None,
        "provider": payment.provider,
        "provider_reference": payment.provider_reference or None,
        "ledger_transaction": (
            payment.ledger_transaction.public_id if payment.ledger_transaction else None
        ),
        "description": payment.description,
        "metadata": payment.metadata,
        "created": payment.created_at,
    }


def payment_attempt_data(attempt: PaymentAttempt) -> dict[str, Any]:
    return {
        "id": attempt.public_id,
        "kind": attempt.kind,
        "status": attempt.status,
        "provider": attempt.provider,
        "decline_class": attempt.decline_class or None,
        "created": attempt.created_at,
    }


def refund_data(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.public_id,
        "object": "refund",
        "payment": refund.payment.public_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "reason": refund.reason or None,
        "status": refund.status,
        "failure_code": refund.failure_code or None,
        "failure_message": refund.failure_message or None,
        "provider": refund.provider,
        "provider_reference": refund.provider_reference or None,
        "ledger_transaction": (
            refund.ledger_transaction.public_id if refund.ledger_transaction else None
        ),
        "metadata": refund.metadata,
        "created": refund.created_at,
    }


def payout_data(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.public_id,
        "object": "payout",
        "source_account": payout.source_account.public_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "destination": payout.destination,
        "status": payout.status,
        "failure_code": payout.failure_code or None,
        "failure_message": payout.failure_message or None,
        "provider": payout.provider,
        "provider_reference": payout.provider_reference or None,
        "ledger_transaction": (
            payout.ledger_transaction.public_id if payout.ledger_transaction else None
        ),
        "description": payout.description,
        "metadata": payout.metadata,
        "created": payout.created_at,
    }
