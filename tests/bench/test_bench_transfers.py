"""`bench_transfers` runs both benchmarks end to end and leaves the ledger consistent."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from bench.transfers import REFERENCE_FUNCTION
from payments.models import Transfer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THROUGHPUT = r"throughput: \d+\.\d transfers/s  p50 \d+\.\d\d ms  p99 \d+\.\d\d ms"


def bench(*args: str) -> str:
    out = StringIO()
    call_command(
        "bench_transfers", "--workers", "2", "--seconds", "1", "--accounts", "4", *args, stdout=out
    )
    return out.getvalue()


def reference_function_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_proc WHERE proname = %s", [REFERENCE_FUNCTION])
        return cursor.fetchone() is not None


@pytest.mark.parametrize("mode", [[], ["--hot"]], ids=["uniform", "hot"])
def test_bench_reports_both_runs_and_the_invariants_hold(mode: list[str]) -> None:
    output = bench(*mode)

    assert re.search(r"queries per transfer_create: \d+", output)
    assert re.search(rf"^project {THROUGHPUT}", output, re.MULTILINE)
    assert re.search(rf"^reference {THROUGHPUT}", output, re.MULTILINE)
    assert re.search(r"^ratio project/reference throughput: \d+\.\d\d", output, re.MULTILINE)
    assert "invariants: ok" in output
    # Both runs wrote real transfers, and the reference function is gone again.
    assert Transfer.objects.filter(public_id__startswith="tr_ref_").exists()
    assert Transfer.objects.exclude(public_id__startswith="tr_ref_").exists()
    assert not reference_function_exists()


def test_hot_sends_every_transfer_to_one_account() -> None:
    bench("--hot", "--no-reference")

    assert Transfer.objects.values("destination_account").distinct().count() == 1


def test_refuses_a_database_other_than_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "vendor", "sqlite")

    with pytest.raises(CommandError, match="needs PostgreSQL"):
        bench()

    assert not Transfer.objects.exists()
