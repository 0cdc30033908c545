import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.api_keys import api_key_authenticate
from accounts.models import ApiKey
from audit.models import AuditLog
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-not-used"))
    return client


def test_staff_create_a_key_and_see_its_secret_once(staff_client: Client) -> None:
    merchant = MerchantFactory.create()

    response = staff_client.post(
        "/admin/accounts/apikey/add/",
        {"merchant": merchant.pk, "name": "checkout", "read_only": "on"},
        follow=True,
    )

    secret = re.search(r"mk_live_[0-9A-Za-z]{32}", response.content.decode())
    assert secret is not None
    api_key = ApiKey.objects.get()
    assert (api_key.merchant, api_key.name, api_key.read_only) == (merchant, "checkout", True)
    assert api_key_authenticate(secret.group()) == api_key
    assert (
        secret.group()
        not in staff_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    )
    audit = AuditLog.objects.get(action="api_key.created")
    assert (audit.actor_type, audit.actor) == ("staff", "ops")


def test_staff_revoke_keys_with_the_action(staff_client: Client) -> None:
    merchant = MerchantFactory.create()
    staff_client.post("/admin/accounts/apikey/add/", {"merchant": merchant.pk, "name": "old"})
    api_key = ApiKey.objects.get()

    staff_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke_selected", "_selected_action": [api_key.pk]},
    )

    api_key.refresh_from_db()
    assert api_key.revoked
    assert AuditLog.objects.filter(action="api_key.revoked", object_id=api_key.public_id).exists()
