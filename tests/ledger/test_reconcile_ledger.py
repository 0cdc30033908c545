"""`reconcile_ledger`: the service and the command, on a clean ledger and on every kind
of break it reports."""

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account, Merchant, SystemPurpose
from accounts.system import system_account_get
from audit.models import AuditLog
from ledger import reconciliation
from ledger.holds import hold_capture, hold_create, hold_release
from ledger.models import LedgerEntry, LedgerTransaction, LedgerTransactionKind, ReconciliationRun
from ledger.reconciliation import reconcile_ledger, reconcile_scope_size
from ledger.services import (
    Leg,
    adjustment_post,
    ledger_transaction_post,
)
from payments.fx import fx_quote_create, fx_rate_set
from payments.services import transfer_create, transfer_reverse
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations


def _merchant() -> Merchant:
    merchant: Merchant = MerchantFactory.create()
    return merchant


def _wallet(merchant: Merchant | None = None, balance: int = 0, currency: str = "USD") -> Account:
    account: Account = AccountFactory.create(
        merchant=merchant or _merchant(), balance=balance, currency=currency
    )
    return account


def _reconcile(*args: str) -> tuple[int, str]:
    """Run the command as an operator would; return its exit code and standard output."""
    out = io.StringIO()
    try:
        call_command("reconcile_ledger", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def _sql(statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _disable_trigger(table: str, name_part: str) -> None:
    """Disable one guard trigger for the rest of the test's transaction (it rolls back
    with the test). Pending deferred events would make ALTER TABLE fail, so fire them now."""
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    (name,) = _sql(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
        [table, name_part],
    )[0]
    _sql(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"')


def _enable_trigger(table: str, name: str) -> None:
    """Put a guard back once the rows it would have refused are in."""
    _sql(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"')


def _unbalanced_transaction(legs: list[tuple[Account, int]]) -> LedgerTransaction:
    """Insert entries straight into the ledger, bypassing the services' checks and the
    account balances."""
    ledger_transaction = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
    for account, amount in legs:
        LedgerEntry.objects.create(
            transaction=ledger_transaction,
            account=account,
            amount=amount,
            currency=account.currency,
            balance_after=account.balance + amount,
            created_at=timezone.now(),
        )
    return ledger_transaction


def _checks(run: ReconciliationRun) -> set[tuple[str, str]]:
    return {(item["check"], item["object"]) for item in run.breaks}


@pytest.mark.django_db
def test_clean_ledger_holds_and_records_an_ok_run() -> None:
    merchant = _merchant()
    alice = _wallet(merchant, balance=10_000)
    bob = _wallet(merchant)
    euros = _wallet(merchant, currency="EUR")
    transfer = transfer_create(merchant=merchant, source=alice, destination=bob, amount=2_500)
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.9")
    transfer_create(
        merchant=merchant,
        source=alice,
        destination=euros,
        amount=1_000,
        fx_quote=fx_quote_create(
            merchant=merchant, source_currency="USD", destination_currency="EUR"
        ),
    )
    transfer_reverse(transfer=transfer, reason="sent by mistake")
    hold_capture(hold=hold_create(account=alice, amount=700), destination=bob, amount=500)
    hold_release(hold=hold_create(account=alice, amount=300))
    hold_create(account=alice, amount=400)  # stays active: held must match it
    adjustment_post(account=bob, amount=-100, reason="fee correction")
    assert invariant_violations() == {}

    code, output = _reconcile()

    assert code == 0
    assert "All invariants hold." in output
    run = ReconciliationRun.objects.get()
    assert run.status == ReconciliationRun.Status.OK
    assert run.finished_at is not None
    assert run.breaks == []
    assert run.parameters == {"account": None, "since": None}
    assert run.checked["transactions"] == LedgerTransaction.objects.count()
    assert run.checked["accounts"] == Account.objects.count()
    assert run.checked["currencies"] == 2
    assert run.checked["append_only_tables"] == 3
    assert f"Reconciliation run #{run.pk}" in output
    assert AuditLog.objects.filter(
        action="reconciliation.finished", object_id=str(run.pk), actor="command:reconcile_ledger"
    ).exists()


@pytest.mark.django_db
def test_corrupted_balance_is_reported_in_text_and_json() -> None:
    account = _wallet(balance=500)
    _sql("UPDATE accounts_account SET balance = balance + 1 WHERE id = %s", [account.pk])

    code, text = _reconcile()
    json_code, document = _reconcile("--format", "json")

    assert (code, json_code) == (1, 1)
    assert account.public_id in text
    assert "I2" in text
    report = json.loads(document)
    assert report["status"] == "broken"
    i2 = [item for item in report["breaks"] if item["check"] == "I2"]
    assert {item["object"] for item in i2} == {account.public_id}
    # Its entries say 500 and so does its newest balance_after.
    assert sorted((item["expected"], item["actual"]) for item in i2) == [(500, 501), (501, 500)]
    # The extra unit exists nowhere else, so USD no longer sums to zero either.
    assert ("I5", "USD", 0, 1) in {
        (item["check"], item["object"], item["expected"], item["actual"])
        for item in report["breaks"]
    }
    assert ReconciliationRun.objects.filter(status=ReconciliationRun.Status.BROKEN).count() == 2


@pytest.mark.django_db
def test_newest_balance_after_that_disagrees_is_an_i2_break() -> None:
    merchant = _merchant()
    source, destination = _wallet(merchant, balance=500), _wallet(merchant)
    ledger_transaction = LedgerTransaction.objects.create(kind=LedgerTransactionKind.TRANSFER)
    now = timezone.now()
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                transaction=ledger_transaction,
                account=source,
                amount=-5,
                currency="USD",
                balance_after=495,
                created_at=now,
            ),
            LedgerEntry(
                transaction=ledger_transaction,
                account=destination,
                amount=5,
                currency="USD",
                balance_after=7,  # wrong: the balance becomes 5
                created_at=now,
            ),
        ]
    )
    _sql("UPDATE accounts_account SET balance = balance - 5 WHERE id = %s", [source.pk])
    _sql("UPDATE accounts_account SET balance = balance + 5 WHERE id = %s", [destination.pk])

    run = reconcile_ledger()

    (entry,) = LedgerEntry.objects.filter(transaction=ledger_transaction, account=destination)
    # The account's newest balance_after, and the entry that carries it.
    assert sorted(run.breaks, key=lambda item: "entry" in item) == [
        {
            "check": "I2",
            "object": destination.public_id,
            "message": (
                f"account {destination.public_id} (USD) has balance 5 "
                "but its newest entry's balance_after is 7"
            ),
            "currency": "USD",
            "expected": 5,
            "actual": 7,
        },
        {
            "check": "I2",
            "object": destination.public_id,
            "message": (
                f"account {destination.public_id} (USD): entry {entry.pk} of "
                f"{ledger_transaction.public_id} has balance_after 7 but the entries up to it "
                "sum to 5"
            ),
            "entry": entry.pk,
            "entries_breaking": 1,
            "currency": "USD",
            "expected": 5,
            "actual": 7,
        },
    ]


@pytest.mark.django_db
def test_held_that_differs_from_active_holds_is_an_i4_break() -> None:
    account = _wallet(balance=500)
    hold_create(account=account, amount=100)
    _sql("UPDATE accounts_account SET held = held + 1 WHERE id = %s", [account.pk])

    code, output = _reconcile()

    assert code == 1
    assert account.public_id in output
    run = ReconciliationRun.objects.get()
    assert _checks(run) == {("I4", account.public_id)}
    assert (run.breaks[0]["expected"], run.breaks[0]["actual"]) == (100, 101)


@pytest.mark.django_db
def test_provider_clearing_beyond_threshold_is_a_break(settings: Any) -> None:
    settings.RECONCILE_CLEARING_THRESHOLD = 1_000
    clearing = system_account_get(currency="USD", purpose=SystemPurpose.PROVIDER_CLEARING)
    wallet = _wallet()

    def pay_in(amount: int) -> None:
        ledger_transaction_post(
            kind=LedgerTransactionKind.TRANSFER,
            legs=[Leg(account=clearing, amount=-amount), Leg(account=wallet, amount=amount)],
        )

    pay_in(1_000)  # exactly at the threshold: still fine
    assert _reconcile()[0] == 0

    pay_in(1)
    code, output = _reconcile()

    assert code == 1
    assert clearing.public_id in output
    run = ReconciliationRun.objects.latest("pk")
    assert _checks(run) == {("clearing_threshold", clearing.public_id)}
    assert (run.breaks[0]["expected"], run.breaks[0]["actual"]) == (1_000, -1_001)
    assert run.checked["clearing_accounts"] == 1


@pytest.mark.django_db(transaction=True)
def test_database_refuses_to_commit_an_unbalanced_transaction() -> None:
    account = _wallet(balance=500)
    transactions_before = LedgerTransaction.objects.count()

    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        _unbalanced_transaction([(account, 5), (account, 2)])

    assert LedgerTransaction.objects.count() == transactions_before
    assert LedgerEntry.objects.filter(account=account).count() == 1  # only the funding
    assert invariant_violations() == {}


@pytest.mark.django_db(transaction=True)
def test_database_refuses_to_commit_a_transaction_without_entries() -> None:
    with pytest.raises(IntegrityError, match="fewer than two entries"), transaction.atomic():
        LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)

    assert not LedgerTransaction.objects.exists()


@pytest.mark.django_db
def test_unbalanced_transaction_that_got_in_anyway_is_an_i1_break() -> None:
    merchant = _merchant()
    first, second = _wallet(merchant, balance=500), _wallet(merchant, balance=500)
    _disable_trigger("ledger_ledgerentry", "balanced_transaction")
    _disable_trigger("ledger_ledgertransaction", "has_entries")
    unbalanced = _unbalanced_transaction([(first, 5), (second, -3)])
    single = _unbalanced_transaction([(first, 2)])
    assert "I1 unbalanced transaction" in invariant_violations()

    code, output = _reconcile()

    assert code == 1
    assert unbalanced.public_id in output
    assert single.public_id in output
    run = ReconciliationRun.objects.get()
    i1 = [item for item in run.breaks if item["check"] == "I1"]
    assert [(item["object"], item["expected"], item["actual"]) for item in i1] == [
        (unbalanced.public_id, 0, 2),
        (single.public_id, 2, 1),  # fewer than two entries
        (single.public_id, 0, 2),
    ]
    # The account balances were bypassed too, and I2 says so.
    assert ("I2", first.public_id) in _checks(run)


@pytest.mark.django_db
def test_ledger_transaction_without_entries_is_an_i1_break() -> None:
    # The database refuses this at commit; the test's transaction never commits, so it
    # stands for one that got in anyway (a disabled trigger, a restore).
    _disable_trigger("ledger_ledgertransaction", "has_entries")
    empty = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
    _enable_trigger("ledger_ledgertransaction", "has_entries")

    run = reconcile_ledger()

    assert _checks(run) == {("I1", empty.public_id)}
    assert (run.breaks[0]["expected"], run.breaks[0]["actual"]) == (2, 0)


@pytest.mark.django_db
def test_disabled_append_only_trigger_is_an_i3_break() -> None:
    _disable_trigger("ledger_ledgertransaction", "append_only")

    code, output = _reconcile()

    assert code == 1
    assert "ledger_ledgertransaction" in output
    assert _checks(ReconciliationRun.objects.get()) == {("I3", "ledger_ledgertransaction")}


@pytest.mark.django_db
def test_account_option_limits_the_per_account_checks() -> None:
    merchant = _merchant()
    healthy, broken = _wallet(merchant, balance=500), _wallet(merchant, balance=500)
    transfer_create(merchant=merchant, source=broken, destination=healthy, amount=100)
    _sql("UPDATE accounts_account SET held = held + 1 WHERE id = %s", [broken.pk])

    healthy_code, healthy_output = _reconcile("--account", healthy.public_id)
    broken_code, broken_output = _reconcile("--account", broken.public_id)

    assert healthy_code == 0, healthy_output
    assert broken_code == 1
    assert broken.public_id in broken_output
    healthy_run, broken_run = ReconciliationRun.objects.order_by("pk")
    assert healthy_run.parameters["account"] == healthy.public_id
    # Its funding adjustment and the transfer; not the other account's funding.
    assert healthy_run.checked["transactions"] == 2
    assert healthy_run.checked["accounts"] == 1
    assert _checks(broken_run) == {("I4", broken.public_id)}


@pytest.mark.django_db
def test_since_option_limits_the_transaction_checks() -> None:
    today = timezone.now().date().isoformat()
    _wallet(balance=500)
    yesterday = timezone.now() - timedelta(days=1)
    # An old empty transaction (one that got past the database), with its own created_at.
    _disable_trigger("ledger_ledgertransaction", "has_entries")
    _sql(
        "INSERT INTO ledger_ledgertransaction (public_id, kind, description, created_at)"
        " VALUES (%s, %s, '', %s)",
        ["ltx_old", LedgerTransactionKind.ADJUSTMENT, yesterday - timedelta(days=30)],
    )
    _enable_trigger("ledger_ledgertransaction", "has_entries")

    recent_code, recent_output = _reconcile("--since", today)
    everything_code, everything_output = _reconcile()

    assert recent_code == 0, recent_output
    assert everything_code == 1
    assert "ltx_old" in everything_output
    recent = ReconciliationRun.objects.order_by("pk").first()
    assert recent is not None
    assert recent.parameters["since"] == f"{today}T00:00:00+00:00"
    assert recent.checked["transactions"] == 1


def test_since_accepts_dates_and_iso_datetimes() -> None:
    from ledger.management.commands.reconcile_ledger import parse_since

    assert parse_since("2025-01-31").isoformat() == "2025-01-31T00:00:00+00:00"
    assert parse_since("2025-01-31T09:30:00").isoformat() == "2025-01-31T09:30:00+00:00"
    assert parse_since("2025-01-31T09:30:00Z").isoformat() == "2025-01-31T09:30:00+00:00"
    assert parse_since("2025-01-31T09:30+02:00").isoformat() == "2025-01-31T09:30:00+02:00"


@pytest.mark.django_db
def test_json_report_is_one_document() -> None:
    _wallet(balance=500)

    code, output = _reconcile("--format", "json")

    assert code == 0
    report = json.loads(output)
    run = ReconciliationRun.objects.get()
    assert report["run"] == run.pk
    assert report["status"] == "ok"
    assert report["breaks"] == []
    assert report["checked"]["accounts"] == 2  # the wallet and the settlement account


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "acct_doesnotexist"], "no account with id 'acct_doesnotexist'"),
        (["--since", "yesterday"], "--since must be a date (YYYY-MM-DD)"),
        (["--since", "2025-02-30"], "--since must be a date (YYYY-MM-DD)"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_bad_arguments_are_clear_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as error:
        call_command("reconcile_ledger", *args, stdout=io.StringIO())

    assert message in str(error.value)
    assert not ReconciliationRun.objects.exists()


@pytest.mark.django_db
def test_accounts_are_checked_in_chunks_with_a_fixed_number_of_queries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchant = _merchant()
    for _ in range(3):
        _wallet(merchant, balance=100)

    with CaptureQueriesContext(connection) as few:
        reconcile_ledger()
    for _ in range(9):
        _wallet(merchant, balance=100)
    with CaptureQueriesContext(connection) as many:
        reconcile_ledger()

    # Same number of chunks (one each way), so the same number of queries: no N+1.
    assert len(many) == len(few)

    monkeypatch.setattr(reconciliation, "CHUNK_SIZE", 5)
    reported: list[int] = []
    run = reconcile_ledger(progress=reported.append)

    assert run.status == ReconciliationRun.Status.OK
    assert run.checked["accounts"] == 13  # 12 wallets and the settlement account
    assert max(reported) == 5
    assert sum(reported) == reconcile_scope_size() == 12 + 13


@pytest.mark.django_db
def test_a_run_that_crashes_is_recorded_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr("ledger.reconciliation._check_accounts", crash)

    with pytest.raises(RuntimeError):
        reconcile_ledger()

    run = ReconciliationRun.objects.get()
    assert run.status == ReconciliationRun.Status.FAILED
    assert run.finished_at is not None
    row = AuditLog.objects.get(action="reconciliation.failed")
    assert row.object_id == str(run.pk)
    assert row.reason == "RuntimeError: database went away"


# --- what an independent review planted (issue 8) -------------------------------------------


def _three_transfers() -> tuple[Account, list[LedgerEntry]]:
    """A wallet with three entries after its funding; returns it and its entries, oldest
    first."""
    merchant = _merchant()
    alice, bob = _wallet(merchant, balance=1_000), _wallet(merchant)
    for amount in (100, 200, 300):
        transfer_create(merchant=merchant, source=alice, destination=bob, amount=amount)
    return alice, list(LedgerEntry.objects.filter(account=alice).order_by("id"))


@pytest.mark.django_db
def test_a_wrong_historical_balance_after_is_a_break() -> None:
    # Only the newest balance_after used to be checked, while "balance at time T" serves
    # every one of them.
    alice, entries = _three_transfers()
    _disable_trigger("ledger_ledgerentry", "append_only")
    _sql("UPDATE ledger_ledgerentry SET balance_after = 777 WHERE id = %s", [entries[1].pk])
    _enable_trigger("ledger_ledgerentry", "append_only")

    run = reconcile_ledger()

    (item,) = run.breaks
    assert (item["check"], item["object"], item["entry"]) == ("I2", alice.public_id, entries[1].pk)
    assert (item["expected"], item["actual"]) == (900, 777)


@pytest.mark.django_db
def test_an_entry_dated_before_the_one_ahead_of_it_is_a_break() -> None:
    _, entries = _three_transfers()
    _disable_trigger("ledger_ledgerentry", "append_only")
    _sql(
        "UPDATE ledger_ledgerentry SET created_at = %s WHERE id = %s",
        [entries[1].created_at - timedelta(seconds=1), entries[2].pk],
    )
    _enable_trigger("ledger_ledgerentry", "append_only")

    run = reconcile_ledger()

    (item,) = run.breaks
    assert (item["check"], item["entry"]) == ("I2", entries[2].pk)
    assert "before the entry ahead of it" in item["message"]


@pytest.mark.django_db
def test_a_wallet_that_went_below_its_floor_in_the_past_is_a_break() -> None:
    # Every figure of today is right; only the history says the wallet was overdrawn.
    wallet = _wallet()
    bank = system_account_get(currency="GBP", purpose=SystemPurpose.SETTLEMENT)
    gbp_wallet = _wallet(wallet.merchant, currency="GBP")
    for amount in (-100, 100):
        ledger_transaction = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
        after = -100 if amount < 0 else 0
        LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    transaction=ledger_transaction,
                    account=gbp_wallet,
                    amount=amount,
                    currency="GBP",
                    balance_after=after,
                    created_at=timezone.now(),
                ),
                LedgerEntry(
                    transaction=ledger_transaction,
                    account=bank,
                    amount=-amount,
                    currency="GBP",
                    balance_after=-after,
                    created_at=timezone.now(),
                ),
            ]
        )

    run = reconcile_ledger()

    (item,) = run.breaks
    assert (item["check"], item["object"]) == ("I4", gbp_wallet.public_id)
    assert (item["expected"], item["actual"]) == (0, -100)


@pytest.mark.django_db
def test_an_entry_in_another_currency_than_its_account_is_a_break() -> None:
    # Only with the foreign key gone; the balance check groups by the account's currency,
    # so the two entries below balance (both accounts are in USD).
    merchant = _merchant()
    alice, bob = _wallet(merchant, balance=500), _wallet(merchant)
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql("ALTER TABLE ledger_ledgerentry DROP CONSTRAINT entry_currency_is_its_accounts")
    _sql("SET CONSTRAINTS ALL DEFERRED")
    ledger_transaction = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
    for account, amount in ((alice, -5), (bob, 5)):
        LedgerEntry.objects.create(
            transaction=ledger_transaction,
            account=account,
            amount=amount,
            currency="EUR",
            balance_after=account.balance + amount,
            created_at=timezone.now(),
        )
    _sql("UPDATE accounts_account SET balance = balance - 5 WHERE id = %s", [alice.pk])
    _sql("UPDATE accounts_account SET balance = balance + 5 WHERE id = %s", [bob.pk])

    run = reconcile_ledger()

    currency_breaks = {
        (item["object"], item["actual"])
        for item in run.breaks
        if "not its account's" in item["message"]
    }
    assert currency_breaks == {(alice.public_id, "EUR"), (bob.public_id, "EUR")}
    # The probe finds the missing foreign key too.
    assert ("I3", "ledger_ledgerentry") in _checks(run)


@pytest.mark.django_db
def test_a_guard_function_replaced_by_one_that_lets_changes_through_is_a_break() -> None:
    # The trigger is still there, named and enabled: only trying a change shows it is gone.
    _wallet(balance=500)
    _sql(
        "CREATE OR REPLACE FUNCTION moneta_refuse_change() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN COALESCE(NEW, OLD); END $$"
    )

    run = reconcile_ledger()

    messages = {item["message"] for item in run.breaks}
    for table in ("ledger_ledgertransaction", "ledger_ledgerentry", "audit_auditlog"):
        assert f"table {table}: an UPDATE was let through" in messages
        assert f"table {table}: a DELETE was let through" in messages


@pytest.mark.django_db
def test_a_balance_check_that_no_longer_checks_is_a_break() -> None:
    _wallet(balance=500)
    _sql(
        "CREATE OR REPLACE FUNCTION moneta_check_transaction_balances() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
    )

    run = reconcile_ledger()

    assert [item["message"] for item in run.breaks] == [
        "table ledger_ledgerentry: an unbalanced posting was let through"
    ]


@pytest.mark.django_db(transaction=True)
def test_entries_let_into_a_committed_transaction_are_a_break() -> None:
    _wallet(balance=500)  # committed: its ledger transaction is another database transaction's

    with transaction.atomic():
        _disable_trigger("ledger_ledgerentry", "written_with_its_transaction")
        run = reconcile_ledger()
        transaction.set_rollback(True)  # the trigger comes back

    assert [item["message"] for item in run.breaks] == [
        "table ledger_ledgerentry: an entry added to a ledger transaction committed earlier "
        "was let through"
    ]


@pytest.mark.django_db
def test_the_probe_leaves_nothing_behind() -> None:
    _wallet(balance=500)
    before = {
        model: model.objects.count()
        for model in (Account, LedgerTransaction, LedgerEntry, ReconciliationRun)
    }
    audit_before = AuditLog.objects.count()

    run = reconcile_ledger()

    assert run.status == ReconciliationRun.Status.OK
    assert {model: model.objects.count() for model in before} == {
        **before,
        ReconciliationRun: before[ReconciliationRun] + 1,
    }
    assert AuditLog.objects.count() == audit_before + 1  # reconciliation.finished


@pytest.mark.django_db
def test_an_fx_position_beyond_the_bound_is_a_break(settings: Any) -> None:
    settings.RECONCILE_FX_POSITION_LIMIT = 1_000
    merchant = _merchant()
    usd, eur = _wallet(merchant, balance=10_000), _wallet(merchant, currency="EUR")
    fx_rate_set(source_currency="USD", destination_currency="EUR", rate="0.9")

    def convert(amount: int) -> None:
        quote = fx_quote_create(
            merchant=merchant, source_currency="USD", destination_currency="EUR"
        )
        transfer_create(
            merchant=merchant, source=usd, destination=eur, amount=amount, fx_quote=quote
        )

    convert(1_000)  # the USD position is exactly at the bound, EUR at -900
    assert reconcile_ledger().status == ReconciliationRun.Status.OK

    convert(2)  # 1.8 euro cents arrive as 1
    run = reconcile_ledger()

    fx_usd = system_account_get(currency="USD", purpose=SystemPurpose.FX)
    assert _checks(run) == {("fx_position", fx_usd.public_id)}
    assert (run.breaks[0]["expected"], run.breaks[0]["actual"]) == (1_000, 1_002)
    assert run.checked["fx_accounts"] == 2


@pytest.mark.django_db
def test_the_account_option_reads_only_that_accounts_entries() -> None:
    merchant = _merchant()
    wallets = [_wallet(merchant, balance=100) for _ in range(3)]
    chosen = wallets[-1]

    with CaptureQueriesContext(connection) as queries:
        reconcile_ledger(account=chosen)

    (entries,) = [query["sql"] for query in queries if "WINDOW w AS" in query["sql"]]
    assert f"e.account_id > {chosen.pk - 1} AND e.account_id <= {chosen.pk}" in entries
