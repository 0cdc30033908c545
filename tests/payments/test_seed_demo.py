import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import TestCase

from accounts.api_keys import api_key_authenticate
from accounts.models import Account, AccountKind, Customer, Hold, HoldStatus, Merchant
from payments.models import Payment, PaymentStatus, Transfer, TransferStatus
from tests.invariants import invariant_violations


def seed() -> tuple[str, str]:
    """Run seed_demo, its payments' tasks too (eager, on commit, as in the demo); return its
    output and the password it printed."""
    out = io.StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("seed_demo", stdout=out)
    output = out.getvalue()
    assert "http://127.0.0.1:8000/admin/" in output
    assert re.search(r"^\s*Username: admin$", output, re.MULTILINE)
    match = re.search(r"^\s*Password: (\S+)$", output, re.MULTILINE)
    assert match is not None, output
    return output, match.group(1)


def demo_counts() -> dict[str, int]:
    shop = Merchant.objects.get(name="Demo Shop")
    return {
        "customers": Customer.objects.filter(merchant=shop).count(),
        "accounts": Account.objects.filter(merchant=shop, kind=AccountKind.WALLET).count(),
        "transfers": Transfer.objects.filter(merchant=shop).count(),
        "failed": Transfer.objects.filter(merchant=shop, status=TransferStatus.FAILED).count(),
        "active_holds": Hold.objects.filter(
            account__merchant=shop, status=HoldStatus.ACTIVE
        ).count(),
        "payments": Payment.objects.filter(merchant=shop).count(),
    }


@pytest.mark.django_db
def test_seed_demo_creates_data_once_and_resets_the_admin_password() -> None:
    first_output, first_password = seed()

    assert "Created merchant 'Demo Shop'" in first_output
    expected = {
        "customers": 3,
        "accounts": 6,
        "transfers": 5,
        "failed": 1,
        "active_holds": 1,
        "payments": 3,
    }
    assert demo_counts() == expected
    shop = Merchant.objects.get(name="Demo Shop")
    wallet_currencies = Account.objects.filter(merchant=shop).values_list("currency", flat=True)
    assert set(wallet_currencies) == {"USD", "EUR", "JPY"}
    failed = Transfer.objects.get(merchant=shop, status=TransferStatus.FAILED)
    assert failed.failure_code == "insufficient_funds"
    fx = Transfer.objects.get(merchant=shop, fx_rate__isnull=False)
    assert (fx.currency, fx.amount, fx.destination_currency, fx.destination_amount) == (
        "USD",
        10_000,
        "EUR",
        9_200,
    )
    payments = {p.description: p for p in Payment.objects.filter(merchant=shop)}
    captured = payments["Order #1004"]
    # 2.9 % of 49.99 is 1.44971, rounded to 1.45, plus 0.30.
    assert (captured.status, captured.amount_captured, captured.fee, captured.net) == (
        PaymentStatus.SUCCEEDED,
        4_999,
        175,
        4_824,
    )
    authorized = payments["Order #1005, to capture when shipped"]
    assert (authorized.status, authorized.amount_capturable) == (
        PaymentStatus.REQUIRES_CAPTURE,
        12_000,
    )
    declined = payments["Order #1006"]
    assert (declined.status, declined.failure_code) == (PaymentStatus.FAILED, "card_declined")
    assert invariant_violations() == {}

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert admin.check_password(first_password)

    second_output, second_password = seed()

    assert "already present" in second_output
    assert Merchant.objects.filter(name="Demo Shop").count() == 1
    assert demo_counts() == expected
    assert get_user_model().objects.filter(username="admin").count() == 1
    assert second_password != first_password
    admin.refresh_from_db()
    assert admin.check_password(second_password)
    assert not admin.check_password(first_password)


@pytest.mark.django_db
def test_seed_demo_prints_a_working_api_key_for_the_demo_merchant() -> None:
    output, _ = seed()

    secret = re.search(r"Bearer (mk_live_\w+)", output)
    assert secret is not None
    api_key = api_key_authenticate(secret.group(1))
    assert api_key is not None
    assert api_key.merchant.name == "Demo Shop"
