"""The demo's way (eager Celery, no Redis, no beat): the relay and the delivery run
in-process once the commit that wrote the event is done, and a retry goes out with the
next commit."""

import pytest
from pytest_django.fixtures import Settings

from accounts.services import customer_create
from tests.factories import MerchantFactory
from tests.webhooks.receiver import Receiver
from webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_eager_celery_delivers_in_process_and_retries_with_the_next_commit(
    settings: Settings, receiver: Receiver
) -> None:
    assert settings.CELERY_TASK_ALWAYS_EAGER
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [0.0, 0.0]
    endpoint, secret = webhook_endpoint_create(
        merchant=MerchantFactory.create(), url=receiver.url, enabled_events=["*"]
    )
    receiver.answer(500, 200)

    customer_create(merchant=endpoint.merchant, name="Ada")  # answered 500
    first = WebhookDelivery.objects.get()
    assert (first.status, first.attempts) == (WebhookDeliveryStatus.PENDING, 1)

    customer_create(merchant=endpoint.merchant, name="Bob")  # the retry goes out too

    assert len(receiver.verified(secret)) == 3
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}
