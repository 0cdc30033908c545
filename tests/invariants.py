"""I1–I5 checked straight from the database, independent of the reconciliation code."""

from django.db import connection


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def invariant_violations() -> dict[str, list[tuple]]:
    """Every broken invariant with its offending rows; an empty dict when all hold."""
    checks = {
        "I1 unbalanced transaction": """
            SELECT transaction_id, currency, SUM(amount) FROM ledger_ledgerentry
            GROUP BY 1, 2 HAVING SUM(amount) <> 0""",
        "I1 transaction with fewer than two entries": """
            SELECT t.id, COUNT(e.id) FROM ledger_ledgertransaction t
            LEFT JOIN ledger_ledgerentry e ON e.transaction_id = t.id
            GROUP BY t.id HAVING COUNT(e.id) < 2""",
        "I2 balance differs from its entries": """
            SELECT a.id, a.balance, COALESCE(SUM(e.amount), 0) FROM accounts_account a
            LEFT JOIN ledger_ledgerentry e ON e.account_id = a.id
            GROUP BY a.id HAVING a.balance <> COALESCE(SUM(e.amount), 0)""",
        "I2 newest balance_after differs": """
            SELECT a.id, a.balance, last.balance_after FROM accounts_account a
            JOIN LATERAL (SELECT balance_after FROM ledger_ledgerentry e
                          WHERE e.account_id = a.id ORDER BY e.id DESC LIMIT 1) last ON true
            WHERE last.balance_after <> a.balance""",
        "I4 wallet beyond its overdraft": """
            SELECT id, balance, held, overdraft_limit FROM accounts_account
            WHERE kind = 'wallet' AND (balance < -overdraft_limit
                                       OR balance - held < -overdraft_limit)""",
        "I4 held differs from active holds": """
            SELECT a.id, a.held, COALESCE(SUM(h.amount), 0) FROM accounts_account a
            LEFT JOIN accounts_hold h ON h.account_id = a.id AND h.status = 'active'
            GROUP BY a.id HAVING a.held <> COALESCE(SUM(h.amount), 0)""",
        "I5 currency does not sum to zero": """
            SELECT currency, SUM(balance) FROM accounts_account
            GROUP BY currency HAVING SUM(balance) <> 0""",
    }
    found = {name: _rows(sql) for name, sql in checks.items()}
    return {name: rows for name, rows in found.items() if rows}
