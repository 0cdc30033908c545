"""Webhooks in the admin: endpoints and deliveries (with their attempts) are shown, never
edited; staff retry deliveries and enable endpoints again, audited as themselves."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditLog, Event
from tests.factories import MerchantFactory
from webhooks.models import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointStatus,
)
from webhooks.services import (
    DisabledReason,
    delivery_end,
    webhook_endpoint_create,
    webhook_endpoint_disable,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-not-used"))
    return client


@pytest.fixture
def endpoint() -> WebhookEndpoint:
    created, _ = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url="https://93.184.216.34/h", enabled_events=["*"]
    )
    return created


def _dead_delivery(endpoint: WebhookEndpoint) -> WebhookDelivery:
    event = Event.objects.create(
        merchant=endpoint.merchant, type="x.y", object_type="x", object_id="1", data={}
    )
    delivery = WebhookDelivery.objects.create(
        event=event, endpoint=endpoint, merchant=endpoint.merchant, attempts=1
    )
    WebhookDeliveryAttempt.objects.create(
        delivery=delivery, number=1, status_code=500, response_body="upstream <b>down</b>"
    )
    delivery_end(delivery=delivery, status=WebhookDeliveryStatus.DEAD, error="HTTP 500")
    return delivery


def test_pages_show_deliveries_with_their_attempts_and_never_the_secret(
    staff: Client, endpoint: WebhookEndpoint
) -> None:
    delivery = _dead_delivery(endpoint)
    page = staff.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "upstream &lt;b&gt;down&lt;/b&gt;" in content  # escaped
    for query in ("?status=dead", f"?endpoint__id__exact={endpoint.pk}", "?q=whd_"):
        assert staff.get(f"/admin/webhooks/webhookdelivery/{query}").status_code == 200
    page = staff.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret not in page.content.decode()
    assert staff.get("/admin/webhooks/webhookendpoint/?status=disabled").status_code == 200


def _action(staff: Client, model: str, action: str, pks: list[int]) -> Any:
    return staff.post(
        f"/admin/webhooks/{model}/",
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )


def test_staff_retry_selected_deliveries(
    staff: Client, endpoint: WebhookEndpoint, django_capture_on_commit_callbacks: Any
) -> None:
    delivery = _dead_delivery(endpoint)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = _action(staff, "webhookdelivery", "retry_selected", [delivery.pk])
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert (delivery.status, delivery.schedule_offset) == (WebhookDeliveryStatus.PENDING, 1)
    assert len(sent) == 1  # its task, sent after commit
    row = AuditLog.objects.get(action="webhook_delivery.retried")
    assert (row.actor_type, row.actor, row.object_id) == ("staff", "ops", delivery.public_id)


def test_staff_enable_a_disabled_endpoint_again(staff: Client, endpoint: WebhookEndpoint) -> None:
    webhook_endpoint_disable(endpoint=endpoint, reason=DisabledReason.GONE, detail="410")
    delivery = _dead_delivery(endpoint)
    response = _action(staff, "webhookdelivery", "retry_selected", [delivery.pk])
    assert "disabled; enable it first" in response.content.decode()

    _action(staff, "webhookendpoint", "enable_selected", [endpoint.pk])
    endpoint.refresh_from_db()
    assert (endpoint.status, endpoint.disabled_reason) == (WebhookEndpointStatus.ENABLED, "")
    row = AuditLog.objects.get(action="webhook_endpoint.enabled")
    assert (row.actor_type, row.actor) == ("staff", "ops")
