"""Where payments' own rows are locked. A business object's row comes first, before the
accounts it moves money between (accounts.locks gives the rest of the global order:
accounts in primary-key order, then holds)."""

from payments.models import Transfer


def transfer_lock(transfer_id: int) -> Transfer:
    """Lock one transfer (with its accounts and ledger transaction read alongside, not
    locked), to change its state: a second reversal waits here and then sees the first."""
    return (
        Transfer.objects.select_for_update(of=("self",), no_key=True)
        .select_related("source_account", "destination_account", "ledger_transaction")
        .get(pk=transfer_id)
    )
