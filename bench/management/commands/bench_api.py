"""HTTP load on the API through the real server, with the money counted afterwards."""

import os
import shutil
from typing import Any

from django.core.management.base import CommandError
from django.db import connection

from audit.management import AuditedCommand
from bench import api as api_benchmark
from bench.management.arguments import bench_report, env_pair, positive_int


class Command(AuditedCommand):
    help = (
        "Benchmark the HTTP API: start the production server, bin/serve (unless --url), "
        "open and fund bench accounts, run N closed-loop clients sending "
        "transfers and/or balance reads for S seconds, print requests/s, p50 and p99 per "
        "endpoint, then check that money was conserved and the ledger invariants hold "
        "(exit code 1 when not, or on any 5xx). Writes a bench merchant into the database. "
        "See docs/benchmarks.md."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--mix",
            choices=sorted(api_benchmark.MIXES),
            default="mixed",
            help="transfers, balances, or mixed: 1 transfer per 5 balance reads (wrk: 1 connection "
            "in 6 sends transfers) (mixed)",
        )
        parser.add_argument("--clients", type=positive_int, default=8, help="clients (8)")
        parser.add_argument("--seconds", type=float, default=15.0, help="timed run (15)")
        parser.add_argument("--warmup", type=float, default=2.0, help="untimed warm-up (2)")
        parser.add_argument(
            "--accounts", type=positive_int, default=100, help="bench accounts (100)"
        )
        parser.add_argument(
            "--url", help="an already running server using this database (none: start one)"
        )
        parser.add_argument(
            "--workers",
            type=positive_int,
            help="uWSGI worker processes: WEB_CONCURRENCY for bin/serve (its default: cores + 1)",
        )
        parser.add_argument(
            "--threads",
            type=positive_int,
            help="threads per worker process: SERVER_THREADS for bin/serve (its default: 1)",
        )
        parser.add_argument(
            "--rate-limit",
            default=api_benchmark.DEFAULT_RATE_LIMIT,
            help=f"API_RATE_LIMIT for the server ({api_benchmark.DEFAULT_RATE_LIMIT})",
        )
        parser.add_argument(
            "--server-env",
            type=env_pair,
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="an environment variable for the server (repeatable), e.g. "
            "DATABASE_CONN_MAX_AGE=60",
        )
        parser.add_argument(
            "--pin-cpu", type=int, metavar="N", help="run the load generator on CPU N only"
        )
        default_client = api_benchmark.default_client()
        parser.add_argument(
            "--client",
            choices=api_benchmark.CLIENTS,
            default=default_client,
            help="the load generator: wrk, the C HTTP benchmarking tool (one process per "
            "endpoint), whose CPU is a fraction of the others'; raw, a minimal asyncio "
            "HTTP/1.1 client; or httpx.AsyncClient. Default: wrk when installed, else raw "
            f"(here: {default_client})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"bench_api needs PostgreSQL; the database is {connection.vendor} "
                "(set DATABASE_URL=postgres://…)"
            )
        if options["seconds"] <= 0 or options["warmup"] < 0:
            raise CommandError("--seconds must be positive and --warmup not negative")
        if options["accounts"] < 2:
            raise CommandError("--accounts must be at least 2")
        pin_cpu = options["pin_cpu"]
        if pin_cpu is not None and pin_cpu not in os.sched_getaffinity(0):
            raise CommandError(f"--pin-cpu {pin_cpu}: not one of this process's CPUs")
        if options["client"] == api_benchmark.WRK and shutil.which(api_benchmark.WRK) is None:
            raise CommandError(api_benchmark.WRK_MISSING)
        if options["url"] and (options["workers"] or options["threads"]):
            raise CommandError(
                "--workers and --threads are for the server bench_api starts: no --url"
            )
        bench_options = api_benchmark.BenchOptions(
            url=options["url"],
            accounts=options["accounts"],
            clients=options["clients"],
            seconds=options["seconds"],
            warmup=options["warmup"],
            mix=options["mix"],
            pin_cpu=pin_cpu,
            server=api_benchmark.ServerOptions(
                workers=options["workers"],
                threads=options["threads"],
                rate_limit=options["rate_limit"],
                extra_env=tuple(options["server_env"]),
            ),
            client=options["client"],
            verbose=options["verbosity"] >= 2,
        )
        bench_report(
            name="bench_api",
            run=lambda: api_benchmark.bench_run(bench_options, self.stdout.write),
            stderr=self.stderr,
            interrupted="the server it started is stopped",
        )
