"""Where payments' own rows are locked. A business object's row comes first, before the
accounts it moves money between (accounts.locks gives the rest of the global order:
accounts in primary-key order, then holds). A refund's payment comes before the refund."""

from payments.models import Payment, Payout, Refund, Transfer


def transfer_lock(transfer_id: int) -> Transfer:
    """Lock one transfer (with its accounts and ledger transaction read alongside, not
    locked), to change its state: a second reversal waits here and then sees the first."""
    return (
        Transfer.objects.select_for_update(of=("self",), no_key=True)
        .select_related("source_account", "destination_account", "ledger_transaction")
        .get(pk=transfer_id)
    )


def payment_lock(payment_id: int) -> Payment:
    """Lock one payment, before its accounts (ledger_transaction_post locks those), to
    change its state: of two workers applying outcomes, or a capture racing a cancel, the
    second waits here and then sees what the first did."""
    return (
        Payment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("destination_account", "customer")
        .get(pk=payment_id)
    )


def refund_lock(refund_id: int) -> Refund:
    """Lock one refund, after its payment (`payment_lock`) and before the accounts: the
    payment's lock serialises its refunds' admissions and outcomes (amount_refunded)."""
    return (
        Refund.objects.select_for_update(of=("self",), no_key=True)
        .select_related("payment", "hold", "hold__account")
        .get(pk=refund_id)
    )


def payout_lock(payout_id: int) -> Payout:
    """Lock one payout, before its source account, to apply the provider's answer."""
    return (
        Payout.objects.select_for_update(of=("self",), no_key=True)
        .select_related("source_account", "hold", "hold__account")
        .get(pk=payout_id)
    )
