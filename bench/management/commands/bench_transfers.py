"""Transfers per second under concurrency, against a one-round-trip PL/pgSQL reference."""

import os
from typing import Any

from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from audit.management import AuditedCommand
from bench import transfers as benchmark
from bench.management.arguments import positive_int


class Command(AuditedCommand):
    help = (
        "Benchmark transfer_create from N forked worker processes for S seconds, then the "
        "same transfer as one PL/pgSQL function, and check the ledger invariants after. "
        "Writes a fresh bench merchant and its accounts into the database. See "
        "docs/benchmarks.md."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument("--workers", type=positive_int, default=4, help="processes (4)")
        parser.add_argument("--seconds", type=float, default=20.0, help="per run (20)")
        parser.add_argument("--accounts", type=positive_int, default=20, help="bench accounts (20)")
        parser.add_argument(
            "--hot",
            action="store_true",
            help="every transfer goes into one extra 'hot' account (worst-case contention)",
        )
        parser.add_argument(
            "--no-reference", action="store_true", help="skip the PL/pgSQL reference run"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"bench_transfers needs PostgreSQL; the database is {connection.vendor} "
                "(set DATABASE_URL=postgres://…)"
            )
        workers, seconds, hot = options["workers"], options["seconds"], options["hot"]
        accounts = options["accounts"]
        if seconds <= 0:
            raise CommandError("--seconds must be positive")
        if not hot and accounts < 2:
            raise CommandError("--accounts must be at least 2 without --hot")
        verbose = options["verbosity"] >= 2

        began = timezone.now()
        bench = benchmark.bench_accounts_create(accounts=accounts, hot=hot)
        mode = "hot (every transfer into one account)" if hot else "uniform"
        self.stdout.write(
            f"bench_transfers on {connection.settings_dict['NAME']}: {workers} workers, "
            f"{seconds:g} s per run, {accounts} accounts, {mode}; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
        )
        statements = benchmark.transfer_statements(bench)
        self.stdout.write(
            f"queries per transfer_create: {len(statements)} (BEGIN and COMMIT included)"
        )
        if verbose:
            for line in benchmark.describe_statements(statements):
                self.stdout.write(f"  {line}")

        try:
            project = benchmark.project_run(bench=bench, workers=workers, seconds=seconds)
            self._report(project, verbose)
            if not options["no_reference"]:
                benchmark.reference_function_create()
                try:
                    reference = benchmark.reference_run(
                        bench=bench, workers=workers, seconds=seconds
                    )
                finally:
                    benchmark.reference_function_drop()
                self._report(reference, verbose)
                self.stdout.write(benchmark.ratio_line(project, reference))
        except RuntimeError as error:  # a worker died
            raise CommandError(str(error)) from error

        checker, breaks = benchmark.invariant_breaks(since=began)
        if breaks:
            for line in breaks:
                self.stderr.write(f"  {line}")
            raise CommandError(f"invariants broken ({len(breaks)} breaks, by {checker})")
        self.stdout.write(f"invariants: ok (checked by {checker})")

    def _report(self, run: benchmark.RunResult, verbose: bool) -> None:
        self.stdout.write(run.summary())
        for sample in run.error_samples[: None if verbose else 3]:
            self.stderr.write(f"  {run.name} error: {sample}")
