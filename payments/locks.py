"""Where payments' own rows are locked. A business object's row comes first, before the
accounts it moves money between (accounts.locks gives the rest of the global order:
accounts in primary-key order, then holds)."""

from payments.models import Payment, Transfer


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
