"""Payouts (SPEC §3): money sent from one of a merchant's accounts to a bank account
through a provider, as a saga (docs/payments.md, "Payouts"):

1. creation (`payout_create`, one transaction): the amount held on the source account
   (402 `insufficient_funds` when it is not available), the payout and its attempt
   recorded, the task sent on commit;
2. the provider call (payments.attempts, the attempt's id its idempotency key);
3. the answer (`payout_attempt_apply`): paid, the hold captured into provider clearing;
   failed, the hold released.
"""

import re
from collections.abc import Mapping

from django.db import transaction

from accounts.models import Account, Merchant
from audit.services import audit_log_record
from core.amounts import validate_amount
from core.currencies import normalize_currency
from core.db import retry_on_conflict
from core.exceptions import ValidationError
from core.validation import max_length_of, validate_metadata, validate_text
from ledger.holds import hold_create
from payments.held import held_answer_apply, held_record
from payments.locks import payout_lock
from payments.models import (
    BANK_DESTINATION_PATTERN,
    AttemptKind,
    PaymentAttempt,
    Payout,
    PayoutStatus,
)
from payments.outcomes import Applied, attempt_enqueue_on_commit, attempt_outcome_apply
from payments.payments import merchant_wallet_check
from payments.providers.base import ProviderResult
from payments.providers.registry import provider_route
from payments.representations import payout_data
from payments.transitions import payout_transition

BANK_DESTINATION = re.compile(BANK_DESTINATION_PATTERN)


def _payout_validate(
    *,
    merchant: Merchant,
    source: Account,
    amount: int,
    currency: str,
    destination: str,
    description: str,
    metadata: Mapping[str, str] | None,
) -> tuple[str, dict[str, str]]:
    """Refuse a malformed payout before anything is written; return its currency (upper
    case) and the metadata to store."""
    validate_amount(amount)
    currency = normalize_currency(currency)
    if not (isinstance(destination, str) and BANK_DESTINATION.fullmatch(destination)):
        # Never echoed back: it may be an account number someone pasted by mistake.
        raise ValidationError(
            "destination must be a bank account token such as ba_ok (ba_ followed by "
            "letters, digits and underscores); account numbers and IBANs are not accepted",
            code="invalid_destination",
            param="destination",
        )
    validate_text(description, param="description", max_length=max_length_of(Payout, "description"))
    metadata = validate_metadata(metadata)
    merchant_wallet_check(merchant=merchant, account=source, currency=currency, role="source")
    return currency, metadata


@retry_on_conflict
def payout_create(
    *,
    merchant: Merchant,
    source: Account,
    amount: int,
    currency: str,
    destination: str,
    description: str = "",
    metadata: Mapping[str, str] | None = None,
) -> Payout:
    """Send `amount` from `source` (one of the merchant's wallets, in `currency`) to the
    bank account `destination` (a provider's bank token, `ba_…`), through the provider
    routing picks.

    In one transaction: the amount held on the source account, the payout (`pending`)
    and its attempt recorded with their audit row; the provider is called by the
    attempt's task, sent after commit. Refused with nothing written and nothing sent: a
    malformed request (`ValidationError`, `invalid_destination` for anything but a bank
    token), another merchant's account (`NotFound`), an inactive account
    (`AccountInactive`), not enough available (`InsufficientFunds`)."""
    currency, metadata = _payout_validate(
        merchant=merchant,
        source=source,
        amount=amount,
        currency=currency,
        destination=destination,
        description=description,
        metadata=metadata,
    )
    provider, routing_reason = provider_route(preferred=merchant.default_provider)
    with transaction.atomic():
        payout = Payout(
            merchant=merchant,
            source_account=source,
            amount=amount,
            currency=currency,
            destination=destination,
            description=description,
            metadata=metadata,
            status=PayoutStatus.PENDING,
            provider=provider,
        )
        payout.hold = hold_create(
            account=source, amount=amount, description=f"Payout {payout.public_id}"
        )
        payout.save(force_insert=True)
        attempt = PaymentAttempt.objects.create(
            payout=payout,
            kind=AttemptKind.PAYOUT,
            provider=provider,
            routing_reason=routing_reason[: max_length_of(PaymentAttempt, "routing_reason")],
            amount=amount,
            currency=currency,
        )
        audit_log_record(
            action="payout.created",
            object_type="payout",
            object_id=payout.public_id,
            new_values={
                **payout_data(payout),
                "attempt": attempt.public_id,
                "hold": payout.hold.public_id,
                "routing": routing_reason,
            },
        )
        attempt_enqueue_on_commit(attempt)
    return payout


@retry_on_conflict
def payout_attempt_apply(
    *, attempt_id: int, result: ProviderResult, latency_ms: int | None = None
) -> Applied:
    """Apply a provider's answer to a payout's attempt (payments.attempts'
    `attempt_result_apply` sends payouts here), in one transaction: the payout locked, then
    (hold capture or release) the accounts and the hold. Paid: the hold captured into
    provider clearing, `payout.paid`. Failed or refused: the hold released,
    `payout.failed`. An attempt already final changes nothing."""
    with transaction.atomic():
        payout_id = PaymentAttempt.objects.values_list("payout_id", flat=True).get(pk=attempt_id)
        payout = payout_lock(payout_id)
        old = payout_data(payout)
        applied = attempt_outcome_apply(
            attempt_id=attempt_id,
            result=result,
            latency_ms=latency_ms,
            handle=lambda attempt, answer: held_answer_apply(
                payout,
                attempt,
                answer,
                done=PayoutStatus.PAID,
                failed=PayoutStatus.FAILED,
                transition=payout_transition,
            ),
        )
        held_record(payout, old, payout_data(payout))
    return applied
