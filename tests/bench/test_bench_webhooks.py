"""`bench_webhooks` end to end in a few seconds (a Celery worker and the receiver, stopped
afterwards), and its exactly-once check failing when an event arrived twice or not at
all."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from bench.payments import WorkerOptions
from bench.webhooks import Arrival, WebhooksBenchOptions, _report

# The webhook tests' second Redis database: this bench's worker queue, nobody else's.
BROKER_URL = "redis://127.0.0.1:6379/3"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_short_run_delivers_every_event_once_verified() -> None:
    out = StringIO()

    call_command(
        "bench_webhooks",
        *("--rate", "20", "--seconds", "1", "--endpoints", "2", "--broker", BROKER_URL),
        stdout=out,
        stderr=StringIO(),
    )

    output = out.getvalue()
    assert re.search(r"^deliveries received: 40 in .* deliveries/s$", output, re.M), output
    assert re.search(r"^commit to receipt: p50 \d+ ms  p99 \d+ ms", output, re.M), output
    assert "every event reached every endpoint exactly once, verified: ok" in output


def test_the_check_names_what_arrived_other_than_once() -> None:
    options = WebhooksBenchOptions(
        broker=BROKER_URL, rate=1, seconds=1, endpoints=1, drain=1, worker=WorkerOptions()
    )
    committed = {"tr_once": 1.0, "tr_twice": 1.0, "tr_never": 1.0, "tr_forged": 1.0}
    arrivals = [
        Arrival("/endpoint-0", "evt_1", "tr_once", 1.1, True),
        Arrival("/endpoint-0", "evt_2", "tr_twice", 1.1, True),
        Arrival("/endpoint-0", "evt_2", "tr_twice", 1.2, True),
        Arrival("/endpoint-0", "evt_3", "tr_forged", 1.2, False),
    ]

    violations = _report(options, committed, arrivals, 1.0, lambda line: None)

    assert violations == [
        "tr_twice reached /endpoint-0 2 times",
        "tr_never reached /endpoint-0 0 times",
        "evt_3 to /endpoint-0 failed verification",
    ]
