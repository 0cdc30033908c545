"""The relay's inline first attempts (`relay` with `inline`) are made one after another,
after the relay's commit: one whose lease ran out meanwhile has been dispatched to another
task, which made it; the relay then leaves it alone, so the endpoint gets it once."""

import time

import pytest
from pytest_django.fixtures import Settings

from audit.models import Event
from tests.factories import MerchantFactory
from tests.webhooks.receiver import Receiver
from webhooks.delivery import delivery_attempt, delivery_attempt_kept
from webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from webhooks.relay import relay_run
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_kept_first_attempt_whose_lease_ran_out_is_not_made_twice(
    settings: Settings, receiver: Receiver
) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.1
    settings.WEBHOOK_DISPATCH_LEASE_SECONDS = 0  # an attempt's lease: 0.3 s
    endpoint, _ = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url=receiver.url, enabled_events=["*"]
    )
    # Written without the post-commit relay (eager here), which would deliver it at once.
    Event.objects.create(
        merchant=endpoint.merchant,
        type="customer.created",
        object_type="customer",
        object_id="c",
        data={},
    )
    _, _, [kept] = relay_run(due=False, keep_at_most=4)
    time.sleep(0.5)  # the relay's POSTs before this one took longer than its lease
    # Meanwhile the relay's next run dispatched it, as due: a task makes attempt 2.
    assert delivery_attempt(delivery_id=kept.pk, attempt=2) == "succeeded"

    assert delivery_attempt_kept(delivery=kept) == "skipped"

    assert len(receiver.requests()) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.SUCCEEDED, 2)


def test_a_kept_first_attempt_within_its_lease_is_made(
    settings: Settings, receiver: Receiver
) -> None:
    endpoint, _ = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url=receiver.url, enabled_events=["*"]
    )
    Event.objects.create(
        merchant=endpoint.merchant,
        type="customer.created",
        object_type="customer",
        object_id="c",
        data={},
    )
    _, _, [kept] = relay_run(due=False, keep_at_most=4)

    assert delivery_attempt_kept(delivery=kept) == "succeeded"
    assert delivery_attempt(delivery_id=kept.pk, attempt=2) == "skipped"

    assert len(receiver.requests()) == 1
    assert WebhookDelivery.objects.get().attempts == 1
