"""Payments in the admin: a payment's page shows its attempts, events and audit trail;
attempts are read-only; finance staff set pricing (audited); staff set a merchant's
default provider (audited)."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Merchant
from audit.models import AuditLog
from payments.attempts import attempt_result_apply
from payments.models import Payment, PaymentAttempt, Pricing, Refund
from payments.payments import payment_create
from payments.payouts import payout_create
from payments.providers.base import ProviderResult, ResultStatus
from payments.refunds import refund_create
from tests.factories import AccountFactory, MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("fin", "fin@example.com", "pw-not-used"))
    return client


@pytest.fixture
def payment(django_capture_on_commit_callbacks: Any) -> Payment:
    wallet = AccountFactory.create()
    assert wallet.merchant is not None
    with django_capture_on_commit_callbacks(execute=False):
        payment = payment_create(
            merchant=wallet.merchant,
            destination=wallet,
            amount=1_000,
            currency="USD",
            payment_method="pm_card_visa",
        )
    attempt_result_apply(
        attempt_id=payment.attempts.get().pk,
        result=ProviderResult(status=ResultStatus.SUCCEEDED, reference="pi_admin"),
    )
    return payment


def test_a_payments_page_shows_its_attempts_events_and_audit_trail(
    staff: Client, payment: Payment
) -> None:
    attempt = PaymentAttempt.objects.get(payment=payment)
    page = staff.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert attempt.public_id in content
    assert "payment.succeeded" in content and "payment.processing" in content
    assert staff.get("/admin/payments/payment/?status=succeeded").status_code == 200
    assert staff.get("/admin/payments/paymentattempt/").status_code == 200
    assert staff.get(f"/admin/payments/paymentattempt/{attempt.pk}/change/").status_code == 200
    # Nobody edits a payment or an attempt by hand.
    staff.post(f"/admin/payments/paymentattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert PaymentAttempt.objects.filter(pk=attempt.pk).exists()


def test_pricing_set_in_the_admin_is_audited_with_the_staff_user(staff: Client) -> None:
    merchant = MerchantFactory.create()
    response = staff.post(
        "/admin/payments/pricing/add/",
        {"merchant": merchant.pk, "currency": "USD", "percent_bps": "290", "fixed_fee": "30"},
    )
    assert response.status_code == 302, response.content[:2000]
    pricing = Pricing.objects.get()
    assert (pricing.percent_bps, pricing.fixed_fee) == (290, 30)

    response = staff.post(
        f"/admin/payments/pricing/{pricing.pk}/change/",
        {"percent_bps": "250", "fixed_fee": "30"},
    )
    assert response.status_code == 302, response.content[:2000]
    rows = AuditLog.objects.filter(action="pricing.set").order_by("id")
    assert [(row.actor_type, row.actor) for row in rows] == [("staff", "fin")] * 2
    assert rows[1].old_values["percent_bps"] == 290 and rows[1].new_values["percent_bps"] == 250


def test_a_merchants_default_provider_is_set_in_the_admin(staff: Client) -> None:
    merchant = MerchantFactory.create()
    response = staff.post(
        f"/admin/accounts/merchant/{merchant.pk}/change/",
        {"fx_spread_bps": "0", "default_provider": "adyen"},
    )
    assert response.status_code == 302, response.content[:2000]
    assert Merchant.objects.get(pk=merchant.pk).default_provider == "adyen"
    row = AuditLog.objects.get(action="merchant.default_provider_set")
    assert (row.old_values, row.new_values) == (
        {"default_provider": ""},
        {"default_provider": "adyen"},
    )
    assert not AuditLog.objects.filter(action="merchant.fx_spread_set").exists()  # unchanged


def test_refunds_and_payouts_are_shown_read_only_with_their_attempts(
    staff: Client, payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    wallet = payment.destination_account
    with django_capture_on_commit_callbacks(execute=False):
        refund = refund_create(merchant=payment.merchant, payment=payment, amount=300)
        payout = payout_create(
            merchant=payment.merchant,
            source=wallet,
            amount=200,
            currency="USD",
            destination="ba_ok",
        )
    assert (
        refund.public_id
        in staff.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()
    )
    for path, pk, attempt in [
        ("refund", refund.pk, refund.attempts.get()),
        ("payout", payout.pk, payout.attempts.get()),
    ]:
        assert staff.get(f"/admin/payments/{path}/").status_code == 200
        page = staff.get(f"/admin/payments/{path}/{pk}/change/")
        assert page.status_code == 200
        assert attempt.public_id in page.content.decode()
    assert staff.get("/admin/payments/paymentattempt/?kind=refund").status_code == 200
    staff.post(f"/admin/payments/refund/{refund.pk}/delete/", {"post": "yes"})
    assert Refund.objects.filter(pk=refund.pk).exists()
