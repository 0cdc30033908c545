"""The public shape of accounts' objects: event payloads and audit values use it."""

from typing import Any

from accounts.models import Account, Customer, Hold


def customer_data(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.public_id,
        "object": "customer",
        "name": customer.name,
        "email": customer.email,
        "external_reference": customer.external_reference,
        "metadata": customer.metadata,
        "created": customer.created_at,
    }


def account_data(account: Account) -> dict[str, Any]:
    return {
        "id": account.public_id,
        "object": "account",
        "currency": account.currency,
        "customer": account.customer.public_id if account.customer else None,
        "status": account.status,
        "overdraft_limit": account.overdraft_limit,
        "description": account.description,
        "metadata": account.metadata,
        "created": account.created_at,
    }


def hold_data(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.public_id,
        "object": "hold",
        "account": hold.account.public_id,
        "amount": hold.amount,
        "captured_amount": hold.captured_amount,
        "status": hold.status,
        "description": hold.description,
        "expires_at": hold.expires_at,
        "ledger_transaction": (
            hold.ledger_transaction.public_id if hold.ledger_transaction else None
        ),
    }
