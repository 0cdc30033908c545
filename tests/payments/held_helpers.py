"""What the refund and payout tests share: a succeeded payment, the janitor's round, and
the simulator's view of refunds and payouts (fixtures: tests/payments/conftest.py)."""

from typing import Any

import httpx
from django.conf import settings

from accounts.models import Account, Hold, SystemPurpose
from accounts.system import system_account_get
from payments.attempts import attempts_recover_due
from payments.models import Payment, PaymentAttempt, PaymentStatus
from payments.payments import payment_create


def succeeded_payment(wallet: Account, amount: int, capture_on_commit: Any) -> Payment:
    """A payment of `amount` into `wallet`, captured (its eager task run on commit)."""
    assert wallet.merchant is not None
    with capture_on_commit(execute=True):
        payment = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=amount,
            currency=wallet.currency,
            payment_method="pm_card_visa",
        )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    return payment


def janitor_round(capture_on_commit: Any) -> int:
    """One round of the janitor: the provider asked about every unresolved attempt."""
    with capture_on_commit(execute=True):
        return attempts_recover_due()


def clearing_balance(currency: str = "USD") -> int:
    return system_account_get(currency=currency, purpose=SystemPurpose.PROVIDER_CLEARING).balance


def provider_objects(
    admin: httpx.Client, provider: str, kind: str, attempt: PaymentAttempt
) -> list[dict[str, Any]]:
    """The refunds or payouts (`kind`) the simulator holds for `attempt`'s idempotency key:
    found the way the adapters find a lost answer (docs/providers.md, Lookups)."""
    if provider == "stripe":
        response = admin.get(
            f"/v1/{kind}/search",
            params={"query": f"metadata['moneta_attempt']:'{attempt.public_id}'"},
            headers={"Authorization": f"Bearer {settings.STRIPE_API_KEY}"},
        )
    else:
        response = admin.get(
            f"/adyen/v71/{kind}",
            params={"reference": attempt.public_id},
            headers={"X-API-Key": settings.ADYEN_API_KEY},
        )
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def active_holds(account: Account) -> int:
    return Hold.objects.filter(account=account, status="active").count()
