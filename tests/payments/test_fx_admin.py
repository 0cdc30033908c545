"""Finance staff set reference rates and merchants' FX spreads in the admin, audited."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditLog
from payments.models import FxRate
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("fin", "fin@example.com", "pw-not-used"))
    return client


def test_a_reference_rate_set_in_the_admin_is_audited_with_the_staff_user(finance: Client) -> None:
    response = finance.post(
        "/admin/payments/fxrate/add/",
        {"source_currency": "USD", "destination_currency": "EUR", "rate": "0.92"},
    )

    assert response.status_code == 302, response.content[:1000]
    rate = FxRate.objects.get()
    assert (rate.source_currency, rate.destination_currency, str(rate.rate)) == (
        "USD",
        "EUR",
        "0.920000000000",
    )
    assert rate.set_by == "fin"
    row = AuditLog.objects.get(action="fx_rate.set")
    assert (row.actor_type, row.actor, row.object_id) == ("staff", "fin", "USD/EUR")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"source_currency": "USD", "destination_currency": "USD", "rate": "1"},
            "two different currencies",
        ),
        (
            {"source_currency": "USD", "destination_currency": "EUR", "rate": "-1"},
            "positive decimal",
        ),
    ],
)
def test_a_bad_rate_is_shown_on_the_form_and_nothing_is_set(
    finance: Client, body: dict[str, str], message: str
) -> None:
    response = finance.post("/admin/payments/fxrate/add/", body)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not FxRate.objects.exists()


def test_a_rate_once_set_is_never_edited(finance: Client) -> None:
    finance.post(
        "/admin/payments/fxrate/add/",
        {"source_currency": "USD", "destination_currency": "EUR", "rate": "0.92"},
    )
    rate = FxRate.objects.get()

    finance.post(
        f"/admin/payments/fxrate/{rate.pk}/change/",
        {"source_currency": "USD", "destination_currency": "EUR", "rate": "9"},
    )

    assert str(FxRate.objects.get().rate) == "0.920000000000"


def test_a_merchants_fx_spread_set_in_the_admin_is_audited(finance: Client) -> None:
    merchant = MerchantFactory.create()

    response = finance.post(
        f"/admin/accounts/merchant/{merchant.pk}/change/", {"fx_spread_bps": "150"}
    )

    assert response.status_code == 302, response.content[:1000]
    merchant.refresh_from_db()
    assert merchant.fx_spread_bps == 150
    row = AuditLog.objects.get(action="merchant.fx_spread_set")
    assert (row.old_values, row.new_values, row.actor) == (
        {"fx_spread_bps": 0},
        {"fx_spread_bps": 150},
        "fin",
    )


def test_a_spread_of_100_percent_or_more_is_refused_on_the_form(finance: Client) -> None:
    merchant = MerchantFactory.create()

    response = finance.post(
        f"/admin/accounts/merchant/{merchant.pk}/change/", {"fx_spread_bps": "10000"}
    )

    assert response.status_code == 200
    merchant.refresh_from_db()
    assert merchant.fx_spread_bps == 0
    assert not AuditLog.objects.filter(action="merchant.fx_spread_set").exists()
