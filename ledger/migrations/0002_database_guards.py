"""The ledger's invariants that PostgreSQL enforces itself (ADR 0004).

- I3: ledger transactions and entries are append-only (UPDATE, DELETE, TRUNCATE refused),
  with `moneta_refuse_change()` from audit/0002.
- I1 at commit: a deferred constraint trigger on each entry checks that its transaction
  sums to zero in each currency (after django-hordak's), and one on each transaction checks
  that it has at least two entries, the case the first cannot see.
"""

from django.db import migrations


GUARDS = """
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON ledger_ledgertransaction
    FOR EACH ROW EXECUTE FUNCTION moneta_refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON ledger_ledgertransaction
    FOR EACH STATEMENT EXECUTE FUNCTION moneta_refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON ledger_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION moneta_refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON ledger_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION moneta_refuse_change();

CREATE OR REPLACE FUNCTION moneta_check_transaction_balances() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ledger_ledgerentry
        WHERE transaction_id = NEW.transaction_id
        GROUP BY currency HAVING SUM(amount) <> 0
    ) THEN
        RAISE EXCEPTION 'ledger transaction % does not balance', NEW.transaction_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER balanced_transaction AFTER INSERT ON ledger_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION moneta_check_transaction_balances();

CREATE OR REPLACE FUNCTION moneta_check_transaction_has_entries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COUNT(*) FROM ledger_ledgerentry WHERE transaction_id = NEW.id) < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has fewer than two entries', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER has_entries AFTER INSERT ON ledger_ledgertransaction
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION moneta_check_transaction_has_entries();
"""

UNGUARDS = """
DROP TRIGGER IF EXISTS has_entries ON ledger_ledgertransaction;
DROP TRIGGER IF EXISTS balanced_transaction ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS append_only ON ledger_ledgertransaction;
DROP TRIGGER IF EXISTS append_only_truncate ON ledger_ledgertransaction;
DROP TRIGGER IF EXISTS append_only ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS append_only_truncate ON ledger_ledgerentry;
DROP FUNCTION IF EXISTS moneta_check_transaction_has_entries();
DROP FUNCTION IF EXISTS moneta_check_transaction_balances();
"""


def on_postgresql(sql: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # None: the SQL's % are not placeholders

    return run


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial"), ("audit", "0002_append_only")]

    operations = [migrations.RunPython(on_postgresql(GUARDS), on_postgresql(UNGUARDS))]
