"""Outbound webhooks: deliveries per second and commit-to-receipt latency, each event
checked to have reached each endpoint once, verified."""

from typing import Any

from django.core.management.base import CommandError
from django.db import connection

from audit.management import AuditedCommand
from bench import webhooks as benchmark
from bench.management.arguments import bench_report, positive_int
from bench.payments import WorkerOptions


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


class Command(AuditedCommand):
    help = (
        "Benchmark outbound webhooks: commit transfers at a steady rate, each event relayed "
        "and delivered by a Celery worker (started here) to every one of N endpoints on a "
        "local receiver, which verifies each request with the standardwebhooks package; "
        "print deliveries per second and commit-to-receipt p50 and p99; exit code 1 unless "
        "every event reached every endpoint exactly once, verified. Needs PostgreSQL, Redis "
        "and the dev dependencies. Writes a bench merchant into the database. See "
        "docs/benchmarks.md."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--rate", type=_positive_float, default=100.0, help="transfers per second (100)"
        )
        parser.add_argument("--seconds", type=_positive_float, default=20.0, help="load (20)")
        parser.add_argument(
            "--endpoints", type=positive_int, default=2, help="endpoints, each gets all (2)"
        )
        parser.add_argument(
            "--drain", type=_positive_float, default=60.0, help="seconds to wait after (60)"
        )
        parser.add_argument(
            "--broker",
            default="redis://127.0.0.1:6379/3",
            help="the Redis the worker takes tasks from (redis://127.0.0.1:6379/3)",
        )
        parser.add_argument(
            "--workers", type=positive_int, default=2, help="worker processes (2: a core each)"
        )
        parser.add_argument("--pool", default="threads", help="each worker's pool (threads)")
        parser.add_argument(
            "--concurrency", type=positive_int, default=8, help="each worker's concurrency (8)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_webhooks needs PostgreSQL (set DATABASE_URL=postgres://…)")
        plan = benchmark.WebhooksBenchOptions(
            broker=options["broker"],
            rate=options["rate"],
            seconds=options["seconds"],
            endpoints=options["endpoints"],
            drain=options["drain"],
            worker=WorkerOptions(pool=options["pool"], concurrency=options["concurrency"]),
            workers=options["workers"],
        )
        bench_report(
            name="bench_webhooks",
            run=lambda: benchmark.bench_run(plan, self.stdout.write),
            stderr=self.stderr,
            interrupted="the bench merchant, its endpoints and deliveries stay in the database",
        )
