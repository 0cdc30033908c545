"""What PostgreSQL itself holds for payments (the SQLite demo gets no triggers).

- A final payment attempt (succeeded, declined, failed) is never changed or deleted: it is
  the record of what a provider did.
- A payment's status changes only along payments.transitions.TRANSITIONS (the same pairs,
  written out here; tests/payments/test_transitions.py checks that the two agree).
"""

from django.db import migrations

from core.migration_sql import on_postgresql

GUARDS = """
CREATE OR REPLACE FUNCTION moneta_refuse_final_attempt_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of payment attempt % is refused: it is final (%)',
        TG_OP, OLD.public_id, OLD.status
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER final_attempt_immutable BEFORE UPDATE OR DELETE ON payments_paymentattempt
    FOR EACH ROW WHEN (OLD.status IN ('succeeded', 'declined', 'failed'))
    EXECUTE FUNCTION moneta_refuse_final_attempt_change();
CREATE TRIGGER attempts_not_truncated BEFORE TRUNCATE ON payments_paymentattempt
    FOR EACH STATEMENT EXECUTE FUNCTION moneta_refuse_change();

CREATE OR REPLACE FUNCTION moneta_check_payment_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.status, NEW.status) NOT IN (
        ('processing', 'succeeded'),
        ('processing', 'requires_capture'),
        ('processing', 'failed'),
        ('requires_capture', 'succeeded'),
        ('requires_capture', 'canceled')
    ) THEN
        RAISE EXCEPTION 'payment % cannot go from % to %', OLD.public_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payment_transition BEFORE UPDATE OF status ON payments_payment
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION moneta_check_payment_transition();
"""

UNGUARDS = """
DROP TRIGGER IF EXISTS payment_transition ON payments_payment;
DROP TRIGGER IF EXISTS attempts_not_truncated ON payments_paymentattempt;
DROP TRIGGER IF EXISTS final_attempt_immutable ON payments_paymentattempt;
DROP FUNCTION IF EXISTS moneta_check_payment_transition();
DROP FUNCTION IF EXISTS moneta_refuse_final_attempt_change();
"""


class Migration(migrations.Migration):
    dependencies = [("payments", "0003_payments_attempts_pricing"), ("audit", "0002_append_only")]

    operations = [migrations.RunPython(on_postgresql(GUARDS), on_postgresql(UNGUARDS))]
