"""Posting to the double-entry ledger, reversing, adjusting, and what PostgreSQL refuses."""

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Account, Merchant, SystemPurpose
from accounts.services import account_create
from accounts.system import system_account_get
from audit.models import AuditLog
from core.exceptions import InsufficientFunds, InvalidState, ValidationError
from ledger.models import LedgerEntry, LedgerTransaction, LedgerTransactionKind
from ledger.services import (
    Leg,
    adjustment_post,
    ledger_transaction_post,
    ledger_transaction_reverse,
    reversal_post,
)
from tests.bad_inputs import bad_text
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations

pytestmark = pytest.mark.django_db


def post(
    *legs: tuple[Account, Any], kind: str = LedgerTransactionKind.TRANSFER
) -> LedgerTransaction:
    """Post `(account, amount)` legs. The savepoint stands in for the caller's own atomic
    block, which a refused posting rolls back."""
    with transaction.atomic():
        return ledger_transaction_post(
            kind=kind,
            legs=[Leg(account=account, amount=amount) for account, amount in legs],
        )


def balances(*accounts: Account) -> list[int]:
    return [Account.objects.get(pk=account.pk).balance for account in accounts]


def entries_of(ledger_transaction: LedgerTransaction) -> list[tuple[int, int, int]]:
    """(account pk, amount, balance_after) of each entry, in posting order."""
    return list(
        ledger_transaction.entries.order_by("pk").values_list("account", "amount", "balance_after")
    )


def row_counts() -> tuple[int, int, int]:
    return (
        LedgerTransaction.objects.count(),
        LedgerEntry.objects.count(),
        AuditLog.objects.count(),
    )


@pytest.fixture
def merchant() -> Merchant:
    return MerchantFactory.create()


@pytest.fixture
def alice(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant, balance=1_000)


@pytest.fixture
def bob(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant)


@pytest.fixture
def carol(merchant: Merchant) -> Account:
    return AccountFactory.create(merchant=merchant)


def settlement(currency: str = "USD") -> Account:
    return system_account_get(currency=currency, purpose=SystemPurpose.SETTLEMENT)


# --- posting --------------------------------------------------------------------------------


def test_three_legs_move_money_and_record_balance_after(
    alice: Account, bob: Account, carol: Account
) -> None:
    posted = post((alice, -500), (bob, 200), (carol, 300))

    assert entries_of(posted) == [(alice.pk, -500, 500), (bob.pk, 200, 200), (carol.pk, 300, 300)]
    assert balances(alice, bob, carol) == [500, 200, 300]


def test_same_account_twice_gets_a_running_balance_after(alice: Account, bob: Account) -> None:
    posted = post((alice, -100), (bob, 100), (alice, -250), (bob, 250))

    assert entries_of(posted) == [
        (alice.pk, -100, 900),
        (bob.pk, 100, 100),
        (alice.pk, -250, 650),
        (bob.pk, 250, 350),
    ]
    assert balances(alice, bob) == [650, 350]


def test_posting_records_entries_in_the_accounts_currency(alice: Account, bob: Account) -> None:
    posted = post((alice, -100), (bob, 100))

    assert set(posted.entries.values_list("currency", flat=True)) == {"USD"}


def test_posting_writes_an_audit_row_with_the_legs(alice: Account, bob: Account) -> None:
    posted = post((alice, -100), (bob, 100))

    row = AuditLog.objects.get(action="ledger_transaction.posted", object_id=posted.public_id)
    assert row.new_values["legs"] == [
        {"account": alice.public_id, "amount": -100, "currency": "USD"},
        {"account": bob.public_id, "amount": 100, "currency": "USD"},
    ]


def test_ledger_transaction_has_an_ltx_id(alice: Account, bob: Account) -> None:
    posted = post((alice, -100), (bob, 100))

    assert posted.public_id.startswith("ltx_")


def test_unbalanced_legs_are_refused_before_anything_is_written(
    alice: Account, bob: Account
) -> None:
    before = row_counts()

    with pytest.raises(ValidationError) as refused:
        post((alice, -100), (bob, 99))

    assert refused.value.code == "unbalanced"
    assert row_counts() == before
    assert balances(alice, bob) == [1_000, 0]


@pytest.mark.parametrize("leg_count", [0, 1])
def test_fewer_than_two_legs_are_refused(alice: Account, leg_count: int) -> None:
    before = row_counts()

    with pytest.raises(ValidationError, match="at least two legs") as refused:
        post(*[(alice, 100)] * leg_count)

    assert refused.value.code == "unbalanced"
    assert row_counts() == before


@pytest.mark.parametrize("amount", [0, 1.5, True, Decimal(100), "100", 10**12 + 1, -(2**63)])
def test_leg_amount_must_be_a_non_zero_whole_number_within_the_maximum(
    alice: Account, bob: Account, carol: Account, amount: object
) -> None:
    before = row_counts()

    with pytest.raises(ValidationError, match="minor units"):
        post((alice, -100), (bob, 100), (carol, amount))

    assert row_counts() == before


@pytest.mark.parametrize("description", bad_text(500))
def test_description_must_be_storable_text(alice: Account, bob: Account, description: Any) -> None:
    before = row_counts()

    with pytest.raises(ValidationError) as refused, transaction.atomic():
        ledger_transaction_post(
            kind=LedgerTransactionKind.TRANSFER,
            legs=[Leg(account=alice, amount=-100), Leg(account=bob, amount=100)],
            description=description,
        )

    assert refused.value.param == "description"
    assert row_counts() == before
    assert balances(alice, bob) == [1_000, 0]


def test_entries_are_stamped_with_posted_at_when_given(alice: Account, bob: Account) -> None:
    moment = timezone.now() - timedelta(seconds=5)

    with transaction.atomic():
        posted = ledger_transaction_post(
            kind=LedgerTransactionKind.TRANSFER,
            legs=[Leg(account=alice, amount=-100), Leg(account=bob, amount=100)],
            posted_at=moment,
        )

    assert set(posted.entries.values_list("created_at", flat=True)) == {moment}


def test_entries_are_stamped_with_the_posting_time_by_default(alice: Account, bob: Account) -> None:
    before = timezone.now()

    posted = post((alice, -100), (bob, 100))

    (stamp,) = set(posted.entries.values_list("created_at", flat=True))
    assert before <= stamp <= timezone.now()


def test_legs_balanced_per_currency_are_accepted(
    merchant: Merchant, alice: Account, bob: Account
) -> None:
    euro_payer = AccountFactory.create(merchant=merchant, currency="EUR", balance=500)
    euro_payee = AccountFactory.create(merchant=merchant, currency="EUR")

    posted = post((alice, -100), (euro_payer, -70), (bob, 100), (euro_payee, 70))

    assert sorted(posted.entries.values_list("currency", "amount")) == [
        ("EUR", -70),
        ("EUR", 70),
        ("USD", -100),
        ("USD", 100),
    ]
    assert invariant_violations() == {}


def test_legs_balanced_only_across_currencies_are_refused(
    merchant: Merchant, alice: Account
) -> None:
    euros = AccountFactory.create(merchant=merchant, currency="EUR")
    before = row_counts()

    with pytest.raises(ValidationError) as refused:
        post((alice, -100), (euros, 100))

    assert refused.value.code == "unbalanced"
    assert row_counts() == before


def test_wallet_cannot_go_below_zero(alice: Account, bob: Account) -> None:
    before = row_counts()

    with pytest.raises(InsufficientFunds):
        post((alice, -1_001), (bob, 1_001))

    assert row_counts() == before
    assert balances(alice, bob) == [1_000, 0]


def test_wallet_may_be_emptied_exactly(alice: Account, bob: Account) -> None:
    post((alice, -1_000), (bob, 1_000))

    assert balances(alice, bob) == [0, 1_000]


@pytest.fixture
def wallet_with_overdraft(merchant: Merchant) -> Account:
    account = account_create(merchant=merchant, currency="USD", overdraft_limit=500)
    adjustment_post(account=account, amount=100, reason="test funding")
    return account


def test_overdraft_allows_going_negative_down_to_the_limit(
    wallet_with_overdraft: Account, bob: Account
) -> None:
    post((wallet_with_overdraft, -600), (bob, 600))

    assert balances(wallet_with_overdraft) == [-500]


def test_overdraft_does_not_allow_going_past_the_limit(
    wallet_with_overdraft: Account, bob: Account
) -> None:
    with pytest.raises(InsufficientFunds):
        post((wallet_with_overdraft, -601), (bob, 601))

    assert balances(wallet_with_overdraft) == [100]


def test_overdraft_at_its_limit_refuses_one_more_unit(
    wallet_with_overdraft: Account, bob: Account
) -> None:
    post((wallet_with_overdraft, -600), (bob, 600))

    with pytest.raises(InsufficientFunds):
        post((wallet_with_overdraft, -1), (bob, 1))


def test_system_account_may_go_negative(bob: Account) -> None:
    clearing = system_account_get(currency="USD", purpose=SystemPurpose.PROVIDER_CLEARING)

    post((clearing, -5_000), (bob, 5_000), kind=LedgerTransactionKind.ADJUSTMENT)

    assert balances(clearing, bob) == [-5_000, 5_000]


def test_invariants_hold_after_postings(alice: Account, bob: Account, carol: Account) -> None:
    post((alice, -500), (bob, 200), (carol, 300))
    post((bob, -200), (alice, 150), (carol, 50))

    assert invariant_violations() == {}


# --- reversal -------------------------------------------------------------------------------


def post_owned_by_the_ledger(*legs: tuple[Account, Any]) -> LedgerTransaction:
    """A posting no business object owns (as a manual adjustment's): the kind the generic
    reversal takes."""
    return post(*legs, kind=LedgerTransactionKind.ADJUSTMENT)


def test_reversal_posts_the_negated_entries(alice: Account, bob: Account, carol: Account) -> None:
    original = post_owned_by_the_ledger((alice, -500), (bob, 200), (carol, 300))

    reversal = ledger_transaction_reverse(ledger_transaction=original)

    assert reversal.kind == LedgerTransactionKind.REVERSAL
    assert entries_of(reversal) == [
        (alice.pk, 500, 1_000),
        (bob.pk, -200, 0),
        (carol.pk, -300, 0),
    ]
    assert balances(alice, bob, carol) == [1_000, 0, 0]


def test_reversal_points_at_what_it_reverses(alice: Account, bob: Account) -> None:
    original = post_owned_by_the_ledger((alice, -500), (bob, 500))

    reversal = ledger_transaction_reverse(ledger_transaction=original)

    assert reversal.reverses == original
    original.refresh_from_db()
    assert original.reversed_by == reversal
    assert reversal.description == f"Reversal of {original.public_id}"


def test_second_reversal_is_refused(alice: Account, bob: Account) -> None:
    original = post_owned_by_the_ledger((alice, -500), (bob, 500))
    ledger_transaction_reverse(ledger_transaction=original)

    with pytest.raises(InvalidState) as refused:
        ledger_transaction_reverse(ledger_transaction=original)

    assert refused.value.code == "already_reversed"
    assert balances(alice, bob) == [1_000, 0]


def test_reversal_that_would_overdraw_is_refused(
    alice: Account, bob: Account, carol: Account
) -> None:
    original = post_owned_by_the_ledger((alice, -500), (bob, 500))
    post((bob, -500), (carol, 500))  # bob spent it
    before = row_counts()

    with pytest.raises(InsufficientFunds):
        ledger_transaction_reverse(ledger_transaction=original)

    assert row_counts() == before
    assert balances(alice, bob, carol) == [500, 0, 500]


def test_invariants_hold_after_a_reversal(alice: Account, bob: Account) -> None:
    ledger_transaction_reverse(
        ledger_transaction=post_owned_by_the_ledger((alice, -500), (bob, 500))
    )

    assert invariant_violations() == {}


def test_a_reversal_cannot_be_reversed(alice: Account, bob: Account) -> None:
    reversal = ledger_transaction_reverse(
        ledger_transaction=post_owned_by_the_ledger((alice, -500), (bob, 500))
    )
    before = row_counts()

    with pytest.raises(InvalidState) as refused:
        ledger_transaction_reverse(ledger_transaction=reversal)
    with pytest.raises(InvalidState):
        reversal_post(ledger_transaction=reversal)

    assert refused.value.code == "reversal_not_reversible"
    assert row_counts() == before
    assert balances(alice, bob) == [1_000, 0]


def test_the_database_refuses_to_reverse_a_reversal(alice: Account, bob: Account) -> None:
    reversal = ledger_transaction_reverse(
        ledger_transaction=post_owned_by_the_ledger((alice, -500), (bob, 500))
    )

    with pytest.raises(IntegrityError, match="a reversal is never reversed"), transaction.atomic():
        LedgerTransaction.objects.create(kind=LedgerTransactionKind.REVERSAL, reverses=reversal)


@pytest.mark.parametrize(
    "kind",
    [LedgerTransactionKind.REVERSAL, LedgerTransactionKind.TRANSFER],
    ids=["reversal without its original", "other kind pointing back"],
)
def test_only_a_reversal_points_back_at_what_it_reverses(
    alice: Account, bob: Account, kind: str
) -> None:
    original = post_owned_by_the_ledger((alice, -500), (bob, 500))

    with (
        pytest.raises(IntegrityError, match="ledger_transaction_reversal_points_back"),
        transaction.atomic(),
    ):
        LedgerTransaction.objects.create(
            kind=kind, reverses=None if kind == LedgerTransactionKind.REVERSAL else original
        )


@pytest.mark.parametrize(
    "kind",
    [
        LedgerTransactionKind.TRANSFER,
        LedgerTransactionKind.FX_TRANSFER,
        LedgerTransactionKind.HOLD_CAPTURE,
    ],
)
def test_a_business_objects_posting_is_not_reversed_by_the_generic_path(
    alice: Account, bob: Account, kind: str
) -> None:
    owned = post((alice, -500), (bob, 500), kind=kind)
    before = row_counts()

    with pytest.raises(InvalidState) as refused:
        ledger_transaction_reverse(ledger_transaction=owned)

    assert refused.value.code == "reverse_through_owner"
    assert row_counts() == before


# --- adjustments ----------------------------------------------------------------------------


def test_adjustment_credit_raises_the_balance_against_settlement(bob: Account) -> None:
    adjustment_post(account=bob, amount=250, reason="goodwill credit")

    assert balances(bob) == [250]


def test_adjustment_debit_lowers_the_balance(alice: Account) -> None:
    adjustment_post(account=alice, amount=-250, reason="duplicate credit")

    assert balances(alice) == [750]


def test_adjustment_posts_against_the_currencys_settlement_account(merchant: Merchant) -> None:
    yen = AccountFactory.create(merchant=merchant, currency="JPY")

    adjusted = adjustment_post(account=yen, amount=300, reason="goodwill credit")

    bank = settlement("JPY")
    assert adjusted.kind == LedgerTransactionKind.ADJUSTMENT
    assert entries_of(adjusted) == [(yen.pk, 300, 300), (bank.pk, -300, -300)]


def test_adjustment_debit_cannot_overdraw(alice: Account) -> None:
    with pytest.raises(InsufficientFunds):
        adjustment_post(account=alice, amount=-1_001, reason="duplicate credit")

    assert balances(alice) == [1_000]


@pytest.mark.parametrize("reason", ["", "  "])
def test_adjustment_requires_a_reason(bob: Account, reason: str) -> None:
    before = row_counts()

    with pytest.raises(ValidationError) as refused:
        adjustment_post(account=bob, amount=100, reason=reason)

    assert refused.value.param == "reason"
    assert row_counts() == before


@pytest.mark.parametrize("reason", bad_text(500))
def test_adjustment_reason_must_be_storable_text(bob: Account, reason: Any) -> None:
    before = row_counts()

    with pytest.raises(ValidationError) as refused:
        adjustment_post(account=bob, amount=100, reason=reason)

    assert refused.value.param == "reason"
    assert row_counts() == before
    assert balances(bob) == [0]


def test_adjustment_reason_may_fill_the_ledger_description(bob: Account) -> None:
    adjusted = adjustment_post(account=bob, amount=100, reason="r" * 500)

    assert adjusted.description == "r" * 500


@pytest.mark.parametrize("amount", [0, 1.5, True])
def test_adjustment_amount_must_be_a_non_zero_whole_number(bob: Account, amount: object) -> None:
    with pytest.raises(ValidationError) as refused:
        adjustment_post(account=bob, amount=amount, reason="ops")  # type: ignore[arg-type]

    assert refused.value.param == "amount"


def test_adjustment_of_a_system_account_is_refused() -> None:
    fees = system_account_get(currency="USD", purpose=SystemPurpose.PLATFORM_FEES)

    with pytest.raises(ValidationError) as refused:
        adjustment_post(account=fees, amount=100, reason="ops")

    assert refused.value.param == "account"


def test_adjustment_is_audited_with_its_reason(bob: Account) -> None:
    adjusted = adjustment_post(account=bob, amount=250, reason="goodwill credit")

    row = AuditLog.objects.get(action="account.adjusted", object_id=bob.public_id)
    assert row.reason == "goodwill credit"
    assert row.new_values == {"amount": 250, "ledger_transaction": adjusted.public_id}


# --- immutability, inside PostgreSQL --------------------------------------------------------


def execute(sql: str, params: Sequence[Any] = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def posted(alice: Account, bob: Account) -> LedgerTransaction:
    return post((alice, -100), (bob, 100))


@pytest.mark.usefixtures("posted")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_ledgerentry SET amount = 0",
        "UPDATE ledger_ledgerentry SET balance_after = balance_after + 1",
        "DELETE FROM ledger_ledgerentry",
        "UPDATE ledger_ledgertransaction SET description = 'edited'",
        "DELETE FROM ledger_ledgertransaction",
        "UPDATE audit_auditlog SET reason = 'edited'",
        "DELETE FROM audit_auditlog",
        "TRUNCATE ledger_ledgerentry",
        "TRUNCATE ledger_ledgertransaction CASCADE",
        "TRUNCATE audit_auditlog",
    ],
)
def test_database_refuses_to_change_history(sql: str) -> None:
    # Fire the posting's deferred checks first: PostgreSQL will not TRUNCATE a table with
    # trigger events pending, and the point is to see our guard refuse it.
    execute("SET CONSTRAINTS ALL IMMEDIATE")
    with (
        pytest.raises(IntegrityError, match="is refused: the table is append-only"),
        transaction.atomic(),
    ):
        execute(sql)


def test_orm_cannot_change_an_entry_either(posted: LedgerTransaction) -> None:
    with (
        pytest.raises(IntegrityError, match="UPDATE on ledger_ledgerentry is refused"),
        transaction.atomic(),
    ):
        posted.entries.update(amount=1)


def test_no_session_setting_switches_the_guards_off(posted: LedgerTransaction) -> None:
    # django-pgtrigger's triggers obey `SET pgtrigger.ignore`; ours have no such door.
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        execute("SET LOCAL pgtrigger.ignore = '{append_only}'")
        execute("DELETE FROM audit_auditlog")


def _insert_entry(ledger_transaction: LedgerTransaction, account: Account, amount: int) -> None:
    execute(
        "INSERT INTO ledger_ledgerentry"
        " (transaction_id, account_id, amount, currency, balance_after, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        [ledger_transaction.pk, account.pk, amount, account.currency, 0, timezone.now()],
    )


def test_database_refuses_an_unbalanced_transaction_at_commit(alice: Account) -> None:
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        raw = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
        _insert_entry(raw, alice, 100)
        _insert_entry(raw, alice, 5)
        execute("SET CONSTRAINTS ALL IMMEDIATE")  # fire the deferred check now


def test_database_accepts_a_balanced_raw_transaction(alice: Account, bob: Account) -> None:
    with transaction.atomic():
        raw = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
        _insert_entry(raw, alice, -100)
        _insert_entry(raw, bob, 100)
        execute("SET CONSTRAINTS ALL IMMEDIATE")

    assert raw.entries.count() == 2


def test_database_refuses_a_zero_entry(alice: Account) -> None:
    # The service refuses a zero leg first; the check constraint is the backstop.
    with pytest.raises(IntegrityError, match="entry_amount_not_zero"), transaction.atomic():
        raw = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
        _insert_entry(raw, alice, 0)


# --- an entry belongs to its account's currency and to its own transaction ----------------


def test_a_leg_whose_account_instance_names_another_currency_is_refused(
    alice: Account, merchant: Merchant
) -> None:
    eur = AccountFactory.create(merchant=merchant, currency="EUR")
    stale = Account.objects.get(pk=alice.pk)
    stale.currency = "EUR"  # the caller's instance lies: the row says USD
    before = row_counts()

    with pytest.raises(ValidationError) as refused:
        post((stale, -100), (eur, 100))

    assert refused.value.code == "currency_mismatch"
    assert row_counts() == before
    assert balances(alice, eur) == [1_000, 0]


def test_an_entry_in_another_currency_than_its_account_is_refused_by_the_database(
    alice: Account, bob: Account
) -> None:
    with (
        pytest.raises(IntegrityError, match="entry_currency_is_its_accounts"),
        transaction.atomic(),
    ):
        raw = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
        execute(
            "INSERT INTO ledger_ledgerentry"
            " (transaction_id, account_id, amount, currency, balance_after, created_at)"
            " VALUES (%s, %s, -100, 'EUR', 0, now()), (%s, %s, 100, 'EUR', 0, now())",
            [raw.pk, alice.pk, raw.pk, bob.pk],
        )


def test_the_balance_check_groups_by_the_accounts_currency(
    alice: Account, merchant: Merchant
) -> None:
    # Entries claiming one currency for accounts in two: balanced by their own column,
    # not by their accounts'. Only the missing foreign key would let them in; drop it for
    # this transaction to see the deferred check refuse them on its own.
    eur = AccountFactory.create(merchant=merchant, currency="EUR")
    # ALTER TABLE needs no checks pending: fire the fixtures' now, then defer again.
    execute("SET CONSTRAINTS ALL IMMEDIATE")
    execute("SET CONSTRAINTS ALL DEFERRED")
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        execute("ALTER TABLE ledger_ledgerentry DROP CONSTRAINT entry_currency_is_its_accounts")
        raw = LedgerTransaction.objects.create(kind=LedgerTransactionKind.ADJUSTMENT)
        execute(
            "INSERT INTO ledger_ledgerentry"
            " (transaction_id, account_id, amount, currency, balance_after, created_at)"
            " VALUES (%s, %s, -100, 'USD', 0, now()), (%s, %s, 100, 'USD', 0, now())",
            [raw.pk, alice.pk, raw.pk, eur.pk],
        )
        execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_the_ledger_transaction_stamp_ignores_what_the_insert_says(alice: Account) -> None:
    with transaction.atomic():
        raw = LedgerTransaction.objects.create(
            kind=LedgerTransactionKind.ADJUSTMENT, created_in_xact=12345
        )
        _insert_entry(raw, alice, -100)
        _insert_entry(raw, alice, 100)

    raw.refresh_from_db()
    assert raw.created_in_xact != 12345


def test_the_posting_time_comes_from_the_database_clock(
    alice: Account, bob: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An application server whose clock is an hour slow still stamps entries and holds
    # with the database's time, taken under the lock.
    slow = timezone.now() - timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: slow)

    posted = post((alice, -100), (bob, 100))

    (stamp,) = set(posted.entries.values_list("created_at", flat=True))
    assert stamp > slow + timedelta(minutes=59)
