"""`bench_provider_webhooks` in a few seconds through bin/serve (stopped afterwards), and
its stored-once check failing when an event was enqueued other than once."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from bench.api import EndpointStats
from bench.provider_webhooks import _Load, stored_once_violations
from bench.webhook_requests import stripe_event_body, stripe_signature
from payments.models import ProviderWebhook
from payments.webhooks import provider_webhook_receive

# Redis database 13: the bench's broker here, where no worker runs.
BROKER_URL = "redis://127.0.0.1:6379/13"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_a_short_run_stores_and_enqueues_every_event_once(provider: str) -> None:
    out = StringIO()

    call_command(
        "bench_provider_webhooks",
        *("--provider", provider, "--seconds", "1", "--clients", "4", "--workers", "1"),
        *("--broker", BROKER_URL),
        stdout=out,
        stderr=StringIO(),
    )

    output = out.getvalue()
    accepted = re.search(
        rf"^accepted  POST /webhooks/providers/{provider}/: .* n (\d+)  200: (\d+)$", output, re.M
    )
    assert accepted and accepted.group(1) == accepted.group(2) != "0", output
    events = re.search(
        r"^events: (\d+) distinct stored, (\d+) duplicates .*; (\d+) tasks", output, re.M
    )
    assert events and events.group(1) == events.group(3) != "0", output
    assert int(events.group(2)) > 0, output  # duplicates were sent, and only answered
    assert "stored once: ok" in output, output
    assert ProviderWebhook.objects.count() == 0  # the bench's events removed afterwards


@pytest.mark.django_db
def test_a_duplicate_enqueued_or_an_event_lost_is_a_violation(
    django_capture_on_commit_callbacks: object,
) -> None:
    body = stripe_event_body(reference="pi_benchx_1", event_id="evt_benchx_1")
    with django_capture_on_commit_callbacks(execute=False):  # type: ignore[operator]
        provider_webhook_receive(provider="stripe", body=body, headers=stripe_signature(body))
    load = _Load(run="x", stats=EndpointStats(), distinct={"evt_benchx_1": (body, {})})

    assert stored_once_violations(load=load, provider="stripe", tasks=1) == []
    [twice] = stored_once_violations(load=load, provider="stripe", tasks=2)
    assert "holds 2 tasks for 1 stored events" in twice
    load.distinct["evt_benchx_2"] = (body, {})
    [lost] = stored_once_violations(load=load, provider="stripe", tasks=1)
    assert "1 accepted events not stored" in lost
