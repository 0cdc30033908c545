"""`manage.py bench_reconcile`: how long `reconcile_ledger` takes on a large ledger."""

import statistics
import sys
import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connection
from tqdm import tqdm

from audit.management import AuditedCommand
from bench.ledger_generator import ledger_generate
from ledger.models import LedgerEntry, LedgerTransaction, ReconciliationRun
from ledger.reconciliation import reconcile_ledger


class Command(AuditedCommand):
    help = (
        "Time reconcile_ledger over the whole ledger, --runs times, after writing --entries "
        "more entries over --accounts new wallets (0: time the ledger as it is). Needs "
        "PostgreSQL; use a database of its own. See docs/benchmarks.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--entries", type=int, default=1_000_000, help="to write (1M)")
        parser.add_argument("--accounts", type=int, default=10_000, help="wallets (10,000)")
        parser.add_argument("--runs", type=int, default=3, help="timed runs (3)")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_reconcile needs PostgreSQL (set DATABASE_URL=postgres://…)")
        if options["entries"] < 0 or options["runs"] < 1 or options["accounts"] < 100:
            raise CommandError("--entries ≥ 0, --runs ≥ 1 and --accounts ≥ 100")
        if options["entries"]:
            started = time.perf_counter()
            with tqdm(
                total=max(options["entries"] // 2, options["accounts"]),
                desc="Writing",
                unit=" transactions",
                file=sys.stderr,
            ) as bar:
                ledger_generate(
                    entries=options["entries"], accounts=options["accounts"], progress=bar.update
                )
            self.stdout.write(f"wrote the ledger in {time.perf_counter() - started:.1f} s")
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        entries, transactions = LedgerEntry.objects.count(), LedgerTransaction.objects.count()
        self.stdout.write(f"ledger: {entries:,} entries, {transactions:,} transactions")
        seconds = []
        for number in range(1, options["runs"] + 1):
            started = time.perf_counter()
            run = reconcile_ledger()
            seconds.append(time.perf_counter() - started)
            self.stdout.write(
                f"run {number}: {seconds[-1]:.1f} s, {run.status}, "
                f"{run.checked['breaks_found']} breaks"
            )
            if run.status != ReconciliationRun.Status.OK:
                for item in run.breaks[:10]:
                    self.stdout.write(f"  {item['check']} {item['message']}")
        median = statistics.median(seconds)
        self.stdout.write(
            f"median {median:.1f} s: {entries / median:,.0f} entries/s, "
            f"{transactions / median:,.0f} transactions/s"
        )
