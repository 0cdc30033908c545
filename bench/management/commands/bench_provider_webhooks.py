"""The inbound provider webhook endpoint under load through the real server."""

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection

from audit.management import AuditedCommand
from bench import api as api_benchmark
from bench import provider_webhooks as webhooks_benchmark
from bench.management.arguments import bench_report, env_pair, positive_int
from payments.providers.registry import PROVIDERS


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise ValueError(value)
    return number


class Command(AuditedCommand):
    help = (
        "Benchmark POST /webhooks/providers/{provider}/ through the production server, "
        "bin/serve: N closed-loop clients send validly signed events for S seconds, a share "
        "of them duplicates of events already accepted; print the requests accepted per "
        "second, p50 and p99; then check that every distinct event was stored once and "
        "enqueued once, and no duplicate was (exit code 1 when not). No worker runs: the "
        "tasks wait in --broker to be counted, then they and the bench's events are removed. "
        "See docs/benchmarks.md."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument("--provider", choices=PROVIDERS, default="stripe", help="(stripe)")
        parser.add_argument("--clients", type=positive_int, default=16, help="clients (16)")
        parser.add_argument("--seconds", type=_positive_float, default=10.0, help="load (10)")
        parser.add_argument(
            "--duplicates",
            type=_share,
            default=0.2,
            help="the share of requests repeating an event already accepted (0.2)",
        )
        parser.add_argument(
            "--broker",
            default=settings.REDIS_URL,
            help="the Redis the server sends tasks to: a database of its own, where no "
            f"worker runs (default REDIS_URL: {settings.REDIS_URL})",
        )
        parser.add_argument(
            "--workers", type=positive_int, help="uWSGI processes (bin/serve's default)"
        )
        parser.add_argument(
            "--threads", type=positive_int, help="threads per uWSGI process (bin/serve's)"
        )
        parser.add_argument(
            "--server-env",
            type=env_pair,
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="an environment variable for the server (repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"bench_provider_webhooks needs PostgreSQL; the database is {connection.vendor}"
            )
        bench_options = webhooks_benchmark.WebhookBenchOptions(
            provider=options["provider"],
            clients=options["clients"],
            seconds=options["seconds"],
            duplicates=options["duplicates"],
            broker=options["broker"],
            server=api_benchmark.ServerOptions(
                workers=options["workers"],
                threads=options["threads"],
                extra_env=tuple(options["server_env"]),
            ),
        )
        bench_report(
            name="bench_provider_webhooks",
            run=lambda: webhooks_benchmark.bench_run(bench_options, self.stdout.write),
            stderr=self.stderr,
            interrupted="the server is stopped; the bench's events and tasks are removed",
        )
