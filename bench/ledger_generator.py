"""A large ledger for benchmarks, written with set-based SQL on PostgreSQL.

Posting a million entries through the services would take most of an hour; these
statements write what the services would (ledger transactions, entries with their running
`balance_after`, the accounts' balances), each chunk in one database transaction, through
every guard of the schema (the balance and entry triggers run on every row). They write no
audit rows: the reconciliation does not read them.
"""

import secrets
from dataclasses import dataclass

from django.db import connection, transaction

from accounts.models import Account, Merchant, SystemPurpose
from accounts.services import merchant_create
from accounts.system import system_account_get

# Every wallet is funded with this much first, far more than its transfers can spend.
FUNDING = 1_000_000_000
CURRENCY = "CHF"


@dataclass(frozen=True)
class GeneratedLedger:
    merchant: Merchant
    accounts: int
    transactions: int
    entries: int


def ledger_generate(
    *, entries: int, accounts: int, chunk: int = 100_000, progress: object = None
) -> GeneratedLedger:
    """Write a ledger of about `entries` entries (two per transaction) over `accounts`
    wallets of a new bench merchant and the CHF settlement account: first one funding
    transaction per wallet, then transfers between wallets (1 to 100 centimes)."""
    if accounts < 100:
        raise ValueError("accounts must be at least 100 (transfers pick distinct wallets)")
    tag = secrets.token_hex(4)
    merchant = merchant_create(name=f"Ledger bench {tag}")
    settlement = system_account_get(currency=CURRENCY, purpose=SystemPurpose.SETTLEMENT)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Account._meta.db_table} (public_id, merchant_id, kind,"  # noqa: S608
            " system_purpose, currency, status, balance, held, overdraft_limit, description,"
            " metadata, created_at)"
            " SELECT 'acct_b' || %s || '_' || g, %s, 'wallet', '', %s, 'active', 0, 0, 0, '',"
            " '{}', now() FROM generate_series(0, %s - 1) g",
            [tag, merchant.pk, CURRENCY, accounts],
        )
    cursor = connection.cursor()
    cursor.execute(
        f"SELECT array_agg(id ORDER BY id) FROM {Account._meta.db_table}"  # noqa: S608
        " WHERE merchant_id = %s",
        [merchant.pk],
    )
    wallets: list[int] = cursor.fetchone()[0]
    total = max(entries // 2, accounts)
    for start in range(0, total, chunk):
        with transaction.atomic():
            _write_chunk(tag, wallets, settlement.pk, start, min(start + chunk, total))
        if callable(progress):
            progress(min(start + chunk, total) - start)
    return GeneratedLedger(
        merchant=merchant, accounts=accounts, transactions=total, entries=2 * total
    )


# Legs of transaction g: funding of wallet g (g < the number of wallets), else a transfer
# from wallet g mod n to wallet (g + 1 + g mod 97) mod n. Entries are inserted in
# (transaction, leg) order, so ids follow the running sums.
_TRANSACTIONS_SQL = """
INSERT INTO ledger_ledgertransaction (public_id, kind, description, created_at)
SELECT 'ltx_b' || %(tag)s || '_' || g, 'transfer', '', now() + make_interval(secs => g / 1000.0)
FROM generate_series(%(start)s, %(stop)s - 1) g
RETURNING id
"""
# A statement of its own: the entries' trigger must see the transactions it checks.
_ENTRIES_SQL = """
WITH new_transactions AS (
    SELECT id, created_at, split_part(public_id, '_', 3)::bigint AS g
    FROM ledger_ledgertransaction WHERE id BETWEEN %(first)s AND %(last)s
),
legs AS (
    SELECT t.id AS transaction_id, t.created_at, leg.account_id, leg.amount, leg.n
    FROM new_transactions t,
    LATERAL (
        SELECT CASE WHEN t.g < %(wallets)s THEN %(settlement)s
                    ELSE (%(ids)s::bigint[])[1 + t.g %% %(wallets)s] END AS account_id,
               CASE WHEN t.g < %(wallets)s THEN -%(funding)s ELSE -(1 + t.g %% 100) END AS amount,
               0 AS n
        UNION ALL
        SELECT CASE WHEN t.g < %(wallets)s THEN (%(ids)s::bigint[])[1 + t.g]
                    ELSE (%(ids)s::bigint[])[1 + (t.g + 1 + t.g %% 97) %% %(wallets)s] END,
               CASE WHEN t.g < %(wallets)s THEN %(funding)s ELSE 1 + t.g %% 100 END,
               1
    ) leg
),
entries AS (
    INSERT INTO ledger_ledgerentry (transaction_id, account_id, amount, currency,
                                    balance_after, created_at)
    SELECT l.transaction_id, l.account_id, l.amount, %(currency)s,
           a.balance + SUM(l.amount) OVER (PARTITION BY l.account_id
                                           ORDER BY l.transaction_id, l.n),
           l.created_at
    FROM legs l JOIN accounts_account a ON a.id = l.account_id
    ORDER BY l.transaction_id, l.n
    RETURNING account_id, amount
)
UPDATE accounts_account a SET balance = a.balance + moved.total
FROM (SELECT account_id, SUM(amount) AS total FROM entries GROUP BY account_id) moved
WHERE a.id = moved.account_id
"""


def _write_chunk(tag: str, wallets: list[int], settlement: int, start: int, stop: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_TRANSACTIONS_SQL, {"tag": tag, "start": start, "stop": stop})
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            _ENTRIES_SQL,
            {
                "first": min(ids),
                "last": max(ids),
                "wallets": len(wallets),
                "settlement": settlement,
                "ids": wallets,
                "funding": FUNDING,
                "currency": CURRENCY,
            },
        )
