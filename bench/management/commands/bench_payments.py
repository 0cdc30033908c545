"""Pay-ins end to end through the real server, a Celery worker and the provider simulator,
with every payment checked to have settled once."""

import shutil
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection

from audit.management import AuditedCommand
from bench import api as api_benchmark
from bench import payments as payments_benchmark
from bench.management.arguments import bench_report, env_pair, positive_int
from payments.providers.registry import PROVIDERS


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


class Command(AuditedCommand):
    help = (
        "Benchmark pay-ins end to end: start the provider simulator (HTTP), a Celery worker "
        "and the production server, bin/serve (unless --url); send POST /api/v1/payments "
        "from N clients for S seconds; print the API's acceptance (requests/s, p50, p99) "
        "and the settlement (payments succeeded per second, p50 and p99 from creation to "
        "succeeded); then check that every payment settled exactly once (one charge per "
        "attempt key at the simulator, one ledger posting, none left processing) and that "
        "reconcile_ledger is clean (exit code 1 when not). Writes a bench merchant into "
        "the database. See docs/benchmarks.md."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument("--clients", type=positive_int, default=16, help="clients (16)")
        parser.add_argument("--seconds", type=_positive_float, default=20.0, help="load (20)")
        parser.add_argument(
            "--rate",
            type=_positive_float,
            help="payments per second in all, paced (default: none, a closed loop: each "
            "client sends its next payment when the last is answered)",
        )
        parser.add_argument(
            "--mix",
            choices=sorted(payments_benchmark.MIXES),
            default="visa",
            help="visa: pm_card_visa only; spec: 80%% pm_card_visa, the rest pm_card_flaky "
            "and the four declines (visa)",
        )
        parser.add_argument(
            "--provider", choices=PROVIDERS, default="stripe", help="the merchant's (stripe)"
        )
        parser.add_argument(
            "--drain",
            type=_positive_float,
            default=120.0,
            help="seconds the payments may take to settle after the load (120)",
        )
        parser.add_argument(
            "--broker",
            default=settings.REDIS_URL,
            help="the Redis the server sends tasks to and the worker takes them from; a "
            "database of its own, so that no other worker takes the bench's tasks "
            f"(default REDIS_URL: {settings.REDIS_URL})",
        )
        parser.add_argument(
            "--url",
            help="an already running server using this database, with CELERY_EAGER=false "
            "and --broker as its REDIS_URL (none: start one)",
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
        parser.add_argument(
            "--worker-pool",
            choices=("threads", "prefork", "solo"),
            default="threads",
            help="the Celery worker's pool (threads: a third of prefork's CPU a payment, "
            "see docs/benchmarks.md)",
        )
        parser.add_argument(
            "--worker-concurrency",
            type=positive_int,
            default=8,
            help="the worker's threads or processes (8)",
        )
        parser.add_argument(
            "--worker-prefetch",
            type=positive_int,
            default=4,
            help="the worker's prefetch multiplier (4)",
        )
        default_client = (
            api_benchmark.WRK if shutil.which(api_benchmark.WRK) else api_benchmark.HTTPX
        )
        parser.add_argument(
            "--client",
            choices=payments_benchmark.CLIENTS,
            default=default_client,
            help=f"the load generator: wrk when installed, else httpx (here: {default_client})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"bench_payments needs PostgreSQL; the database is {connection.vendor}"
            )
        if options["client"] == api_benchmark.WRK and shutil.which(api_benchmark.WRK) is None:
            raise CommandError("wrk is not installed; use --client httpx")
        if options["url"] and (options["workers"] or options["threads"]):
            raise CommandError("--workers and --threads are for the server it starts: no --url")
        bench_options = payments_benchmark.PaymentsBenchOptions(
            url=options["url"],
            broker=options["broker"],
            clients=options["clients"],
            seconds=options["seconds"],
            rate=options["rate"],
            mix=options["mix"],
            provider=options["provider"],
            drain=options["drain"],
            server=api_benchmark.ServerOptions(
                workers=options["workers"],
                threads=options["threads"],
                extra_env=tuple(options["server_env"]),
            ),
            worker=payments_benchmark.WorkerOptions(
                pool=options["worker_pool"],
                concurrency=options["worker_concurrency"],
                prefetch=options["worker_prefetch"],
            ),
            client=options["client"],
            verbose=options["verbosity"] >= 2,
        )
        bench_report(
            name="bench_payments",
            run=lambda: payments_benchmark.bench_run(bench_options, self.stdout.write),
            stderr=self.stderr,
            interrupted="the processes it started are stopped",
        )
