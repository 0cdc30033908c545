"""Refunds and payouts (issue 11), their attempts, and what PostgreSQL holds for them (the
SQLite demo gets no triggers): a refund's and a payout's status change only along
payments.transitions' REFUND_TRANSITIONS and PAYOUT_TRANSITIONS (the same pairs, written
out here; tests/payments/test_refund_payout_rules.py checks that they agree)."""

import core.ids
import django.db.models.deletion
import djmoney.models.fields
from django.db import migrations, models

from core.migration_sql import on_postgresql

GUARDS = """
CREATE OR REPLACE FUNCTION moneta_check_refund_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.status, NEW.status) NOT IN (('pending', 'succeeded'), ('pending', 'failed')) THEN
        RAISE EXCEPTION 'refund % cannot go from % to %', OLD.public_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER refund_transition BEFORE UPDATE OF status ON payments_refund
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION moneta_check_refund_transition();

CREATE OR REPLACE FUNCTION moneta_check_payout_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.status, NEW.status) NOT IN (('pending', 'paid'), ('pending', 'failed')) THEN
        RAISE EXCEPTION 'payout % cannot go from % to %', OLD.public_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payout_transition BEFORE UPDATE OF status ON payments_payout
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION moneta_check_payout_transition();
"""

UNGUARDS = """
DROP TRIGGER IF EXISTS payout_transition ON payments_payout;
DROP TRIGGER IF EXISTS refund_transition ON payments_refund;
DROP FUNCTION IF EXISTS moneta_check_payout_transition();
DROP FUNCTION IF EXISTS moneta_check_refund_transition();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_merchant_default_provider'),
        ('ledger', '0004_payment_kind'),
        ('payments', '0004_payment_guards'),
    ]

    operations = [
        migrations.AlterField(
            model_name='paymentattempt',
            name='kind',
            field=models.CharField(choices=[('authorize', 'Authorize'), ('capture', 'Capture'), ('cancel', 'Cancel'), ('refund', 'Refund'), ('payout', 'Payout')], max_length=16),
        ),
        migrations.CreateModel(
            name='Payout',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', models.CharField(default=core.ids.new_payout_id, editable=False, max_length=32, unique=True)),
                ('amount', models.BigIntegerField()),
                ('currency', djmoney.models.fields.CurrencyField(default=None, max_length=3)),
                ('destination', models.CharField(max_length=255)),
                ('description', models.CharField(blank=True, max_length=500)),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('paid', 'Paid'), ('failed', 'Failed')], db_index=True, max_length=16)),
                ('failure_code', models.CharField(blank=True, max_length=64)),
                ('failure_message', models.CharField(blank=True, max_length=500)),
                ('provider', models.CharField(max_length=16)),
                ('provider_reference', models.CharField(blank=True, db_index=True, max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('hold', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='payout', to='accounts.hold')),
                ('ledger_transaction', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='payout', to='ledger.ledgertransaction')),
                ('merchant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to='accounts.merchant')),
                ('source_account', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to='accounts.account')),
            ],
            options={
                'ordering': ['-id'],
            },
        ),
        migrations.AddField(
            model_name='paymentattempt',
            name='payout',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='attempts', to='payments.payout'),
        ),
        migrations.CreateModel(
            name='Refund',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', models.CharField(default=core.ids.new_refund_id, editable=False, max_length=32, unique=True)),
                ('amount', models.BigIntegerField()),
                ('currency', djmoney.models.fields.CurrencyField(default=None, max_length=3)),
                ('reason', models.CharField(blank=True, choices=[('duplicate', 'Duplicate'), ('fraudulent', 'Fraudulent'), ('requested_by_customer', 'Requested by customer')], max_length=32)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], db_index=True, max_length=16)),
                ('failure_code', models.CharField(blank=True, max_length=64)),
                ('failure_message', models.CharField(blank=True, max_length=500)),
                ('provider', models.CharField(max_length=16)),
                ('provider_reference', models.CharField(blank=True, db_index=True, max_length=255)),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('hold', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='refund', to='accounts.hold')),
                ('ledger_transaction', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='refund', to='ledger.ledgertransaction')),
                ('merchant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='refunds', to='accounts.merchant')),
                ('payment', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='refunds', to='payments.payment')),
            ],
            options={
                'ordering': ['-id'],
            },
        ),
        migrations.AddField(
            model_name='paymentattempt',
            name='refund',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='attempts', to='payments.refund'),
        ),
        migrations.AddConstraint(
            model_name='paymentattempt',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('kind__in', ('authorize', 'capture', 'cancel')), ('payment__isnull', False), ('payout__isnull', True), ('refund__isnull', True)), models.Q(('kind', 'refund'), ('payment__isnull', True), ('payout__isnull', True), ('refund__isnull', False)), models.Q(('kind', 'payout'), ('payment__isnull', True), ('payout__isnull', False), ('refund__isnull', True)), _connector='OR'), name='attempt_names_exactly_its_owner'),
        ),
        migrations.AddConstraint(
            model_name='paymentattempt',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'unknown'])), fields=('refund',), name='attempt_one_unresolved_per_refund'),
        ),
        migrations.AddConstraint(
            model_name='paymentattempt',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'unknown'])), fields=('payout',), name='attempt_one_unresolved_per_payout'),
        ),
        migrations.AddConstraint(
            model_name='payout',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='payout_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='payout',
            constraint=models.CheckConstraint(condition=models.Q(('destination__regex', '^ba_[A-Za-z0-9_]+$')), name='payout_destination_is_a_bank_token'),
        ),
        migrations.AddConstraint(
            model_name='payout',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('failure_code', ''), ('status__in', ['pending', 'paid']), models.Q(models.Q(('ledger_transaction__isnull', True), ('status', 'pending')), models.Q(('ledger_transaction__isnull', False), ('status', 'paid')), _connector='OR')), models.Q(('ledger_transaction__isnull', True), ('status', 'failed'), models.Q(('failure_code', ''), _negated=True)), _connector='OR'), name='payout_status_consistent'),
        ),
        migrations.AddConstraint(
            model_name='refund',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='refund_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='refund',
            constraint=models.CheckConstraint(condition=models.Q(('reason__in', ['', 'duplicate', 'fraudulent', 'requested_by_customer'])), name='refund_reason_known'),
        ),
        migrations.AddConstraint(
            model_name='refund',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('failure_code', ''), ('status__in', ['pending', 'succeeded']), models.Q(models.Q(('ledger_transaction__isnull', True), ('status', 'pending')), models.Q(('ledger_transaction__isnull', False), ('status', 'succeeded')), _connector='OR')), models.Q(('ledger_transaction__isnull', True), ('status', 'failed'), models.Q(('failure_code', ''), _negated=True)), _connector='OR'), name='refund_status_consistent'),
        ),
        migrations.RunPython(on_postgresql(GUARDS), on_postgresql(UNGUARDS)),
    ]
