"""What the ledger's rows must agree on, enforced by PostgreSQL (ADR 0004, issue 8):

- an entry is in its account's currency: a foreign key on (account_id, currency) to the
  account's unique (id, currency), and the balance check groups by the account's currency;
- entries are written in the database transaction that created their ledger transaction: a
  trigger stamps each ledger transaction with the id of the PostgreSQL transaction that
  inserts it (whatever the insert says), and entries for any other are refused;
- a reversal points at what it reverses (a check constraint), and a reversal is never
  reversed itself.
"""

from django.db import migrations, models

from core.migration_sql import on_postgresql

GUARDS = """
ALTER TABLE ledger_ledgerentry ADD CONSTRAINT entry_currency_is_its_accounts
    FOREIGN KEY (account_id, currency) REFERENCES accounts_account (id, currency);

CREATE OR REPLACE FUNCTION moneta_ledger_transaction_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_in_xact := pg_current_xact_id()::text::bigint;
    IF NEW.reverses_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM ledger_ledgertransaction
        WHERE id = NEW.reverses_id AND reverses_id IS NOT NULL
    ) THEN
        RAISE EXCEPTION 'ledger transaction % is a reversal; a reversal is never reversed',
            NEW.reverses_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER stamp_and_check BEFORE INSERT ON ledger_ledgertransaction
    FOR EACH ROW EXECUTE FUNCTION moneta_ledger_transaction_stamp();

CREATE OR REPLACE FUNCTION moneta_entry_in_its_transaction() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM ledger_ledgertransaction
        WHERE id = NEW.transaction_id
          AND created_in_xact = pg_current_xact_id()::text::bigint
    ) THEN
        RAISE EXCEPTION 'ledger transaction % was created in another database transaction; '
            'its entries are final', NEW.transaction_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER written_with_its_transaction BEFORE INSERT ON ledger_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION moneta_entry_in_its_transaction();

CREATE OR REPLACE FUNCTION moneta_check_transaction_balances() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ledger_ledgerentry e JOIN accounts_account a ON a.id = e.account_id
        WHERE e.transaction_id = NEW.transaction_id
        GROUP BY a.currency HAVING SUM(e.amount) <> 0
    ) THEN
        RAISE EXCEPTION 'ledger transaction % does not balance', NEW.transaction_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
"""

UNGUARDS = """
DROP TRIGGER IF EXISTS written_with_its_transaction ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS stamp_and_check ON ledger_ledgertransaction;
DROP FUNCTION IF EXISTS moneta_entry_in_its_transaction();
DROP FUNCTION IF EXISTS moneta_ledger_transaction_stamp();
ALTER TABLE ledger_ledgerentry DROP CONSTRAINT IF EXISTS entry_currency_is_its_accounts;
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
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0002_database_guards"),
        ("accounts", "0003_account_id_currency_and_hold_times"),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgertransaction",
            name="created_in_xact",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddConstraint(
            model_name="ledgertransaction",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "reversal"), ("reverses__isnull", False)),
                    models.Q(models.Q(("kind", "reversal"), _negated=True), ("reverses__isnull", True)),
                    _connector="OR",
                ),
                name="ledger_transaction_reversal_points_back",
            ),
        ),
        migrations.RunPython(on_postgresql(GUARDS), on_postgresql(UNGUARDS)),
    ]
