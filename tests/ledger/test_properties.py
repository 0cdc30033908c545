"""Random sequences of money operations, checked against a model and against I1–I5."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from accounts.models import Account, Hold, HoldStatus
from accounts.services import account_freeze, account_unfreeze
from core.exceptions import DomainError
from ledger.holds import hold_capture, hold_create, hold_release
from ledger.models import LedgerTransaction
from ledger.services import adjustment_post, ledger_transaction_reverse
from payments.fx import fx_quote_create, fx_rate_set
from payments.models import Transfer, TransferStatus
from payments.services import transfer_create, transfer_reverse
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations

USD_WALLETS = 4
account_index = st.integers(min_value=0, max_value=USD_WALLETS - 1)
amount = st.integers(min_value=1, max_value=400)

operation = st.one_of(
    st.tuples(st.just("transfer"), account_index, account_index, amount),
    st.tuples(
        st.just("fx_transfer"), account_index, amount, st.sampled_from(["0.91", "1.07", "0.5"])
    ),
    st.tuples(st.just("hold"), account_index, amount),
    st.tuples(st.just("release"), st.integers(0, 20)),
    st.tuples(st.just("capture"), st.integers(0, 20), account_index, st.integers(1, 100)),
    st.tuples(st.just("reverse"), st.integers(0, 30)),
    st.tuples(st.just("adjust"), account_index, st.integers(-300, 300).filter(bool)),
    st.tuples(st.just("freeze"), account_index),
    st.tuples(st.just("unfreeze"), account_index),
)


class LedgerPropertyTests(TestCase):
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(operation, min_size=1, max_size=25))
    def test_invariants_hold_after_any_sequence(self, operations):
        merchant = MerchantFactory.create()
        wallets = [
            AccountFactory.create(
                merchant=merchant, balance=500, overdraft_limit=100 if i == 0 else 0
            )
            for i in range(USD_WALLETS)
        ]
        eur = AccountFactory.create(merchant=merchant, currency="EUR")
        holds: list[Hold] = []
        declined_transfers = 0

        for op, *args in operations:
            try:
                if op == "transfer":
                    source, destination, value = args
                    if source == destination:
                        continue
                    transfer = transfer_create(
                        merchant=merchant,
                        source=wallets[source],
                        destination=wallets[destination],
                        amount=value,
                    )
                    declined_transfers += transfer.status == TransferStatus.FAILED
                elif op == "fx_transfer":
                    source, value, rate = args
                    fx_rate_set(source_currency="USD", destination_currency="EUR", rate=rate)
                    transfer_create(
                        merchant=merchant,
                        source=wallets[source],
                        destination=eur,
                        amount=value,
                        fx_quote=fx_quote_create(
                            merchant=merchant, source_currency="USD", destination_currency="EUR"
                        ),
                    )
                elif op == "hold":
                    holds.append(hold_create(account=wallets[args[0]], amount=args[1]))
                elif op == "release" and holds:
                    hold_release(hold=holds[args[0] % len(holds)])
                elif op == "capture" and holds:
                    hold = holds[args[0] % len(holds)]
                    destination = wallets[args[1]]
                    if destination.pk != hold.account_id:
                        hold_capture(
                            hold=hold,
                            destination=destination,
                            amount=max(1, hold.amount * args[2] // 100),
                        )
                elif op == "reverse":
                    posted = list(LedgerTransaction.objects.order_by("pk"))
                    chosen = posted[args[0] % len(posted)]
                    owner = Transfer.objects.filter(ledger_transaction=chosen).first()
                    if owner is not None:
                        transfer_reverse(transfer=owner, reason="property test")
                    else:  # an adjustment; a hold capture or a reversal is refused
                        ledger_transaction_reverse(ledger_transaction=chosen)
                elif op == "adjust":
                    adjustment_post(
                        account=wallets[args[0]], amount=args[1], reason="property test"
                    )
                elif op == "freeze":
                    account_freeze(account=wallets[args[0]], reason="property test")
                elif op == "unfreeze":
                    account_unfreeze(account=wallets[args[0]], reason="property test")
            except DomainError:
                pass  # a refused operation must leave everything as it was: checked below

            assert invariant_violations() == {}, (op, args)

        for account in Account.objects.filter(pk__in=[w.pk for w in wallets]):
            active = sum(h.amount for h in account.holds.filter(status=HoldStatus.ACTIVE))
            assert account.held == active
            assert account.balance - account.held >= -account.overdraft_limit
