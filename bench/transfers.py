"""Transfer throughput under concurrency: the project's `transfer_create` against a
PL/pgSQL reference that does the same writes in one round trip.

Used by `manage.py bench_transfers` (see docs/benchmarks.md). Worker processes are forked
(the 'fork' start method), so the Django settings, the audit context and the bench's
account ids reach them without pickling; each worker opens its own connection.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import queue
import random
import threading
import time
import traceback
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg import sql

from accounts.models import Account, Merchant
from accounts.services import account_create, merchant_create
from audit.context import current_context
from ledger.reconciliation import reconcile_ledger
from ledger.services import adjustment_post

CURRENCY = "USD"
# Each bench account starts with 10^12 minor units: transfers of 1–100 never run one dry.
FUNDING = 10**12
MIN_AMOUNT, MAX_AMOUNT = 1, 100
REFERENCE_FUNCTION = "bench_reference_transfer"
_SETUP_TIMEOUT = 120.0  # seconds a worker may take to connect and load its accounts
_ERRORS_KEPT = 5


@dataclass(frozen=True)
class BenchAccounts:
    """The bench's merchant and accounts, by primary key: transfers go between two of
    `account_ids`, or from one of them to `hot_account_id` when it is set."""

    merchant_id: int
    account_ids: tuple[int, ...]
    hot_account_id: int | None = None

    def pick(self, rng: random.Random) -> tuple[int, int]:
        """A (source, destination) pair: uniform over distinct accounts, or any source
        into the hot account."""
        if self.hot_account_id is not None:
            return rng.choice(self.account_ids), self.hot_account_id
        source, destination = rng.sample(self.account_ids, 2)
        return source, destination


@dataclass
class WorkerResult:
    """What one worker process did inside the timed window."""

    succeeded: int = 0
    failed: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: array = field(default_factory=lambda: array("d"))
    finished_at: float = 0.0  # time.monotonic() when its last call returned

    def record_error(self, error: BaseException) -> None:
        self.errors += 1
        if len(self.error_samples) < _ERRORS_KEPT:
            self.error_samples.append(f"{type(error).__name__}: {error}".strip())


@dataclass
class RunResult:
    """One timed run over every worker: throughput counts every completed call
    (succeeded or failed) over the wall time from the common start to the last return."""

    name: str
    workers: int
    elapsed: float
    succeeded: int
    failed: int
    errors: int
    error_samples: list[str]
    latencies: list[float]

    @property
    def completed(self) -> int:
        return self.succeeded + self.failed + self.errors

    @property
    def throughput(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the call latencies, in milliseconds."""
        if not self.latencies:
            return math.nan
        rank = max(1, math.ceil(fraction * len(self.latencies)))
        return self.latencies[rank - 1] * 1000

    def summary(self) -> str:
        return (
            f"{self.name} throughput: {self.throughput:.1f} transfers/s"
            f"  p50 {self.percentile_ms(0.50):.2f} ms  p99 {self.percentile_ms(0.99):.2f} ms"
            f"  succeeded {self.succeeded}  failed {self.failed + self.errors}"
            + (f" ({self.errors} raised)" if self.errors else "")
        )


# --- setup -----------------------------------------------------------------------------


def bench_accounts_create(*, accounts: int, hot: bool) -> BenchAccounts:
    """A fresh merchant with `accounts` funded USD wallets (and a hot one), made through
    the services so that the bench data is audited and balanced like real data."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    merchant = merchant_create(name=f"Bench {stamp}")
    funded = []
    for _ in range(accounts + (1 if hot else 0)):
        account = account_create(merchant=merchant, currency=CURRENCY)
        adjustment_post(account=account, amount=FUNDING, reason="bench_transfers funding")
        funded.append(account.pk)
    if hot:
        return BenchAccounts(
            merchant_id=merchant.pk, account_ids=tuple(funded[:-1]), hot_account_id=funded[-1]
        )
    return BenchAccounts(merchant_id=merchant.pk, account_ids=tuple(funded))


def _load_accounts(bench: BenchAccounts) -> tuple[Merchant, dict[int, Account]]:
    merchant = Merchant.objects.get(pk=bench.merchant_id)
    ids = [*bench.account_ids, *([bench.hot_account_id] if bench.hot_account_id else [])]
    return merchant, Account.objects.in_bulk(ids)


def transfer_statements(bench: BenchAccounts) -> list[str]:
    """The SQL one `transfer_create` sends, BEGIN and COMMIT included (Django logs them):
    one round trip each."""
    from payments.services import transfer_create

    merchant, accounts = _load_accounts(bench)
    source, destination = bench.pick(random.Random(0))  # noqa: S311 - workload, not crypto
    with CaptureQueriesContext(connection) as queries:
        transfer_create(
            merchant=merchant,
            source=accounts[source],
            destination=accounts[destination],
            amount=MIN_AMOUNT,
        )
    return [query["sql"] for query in queries.captured_queries]


# --- the worker processes ----------------------------------------------------------------


# A worker's setup: given the bench and an exit stack for what it opens, one transfer.
TransferFactory = Callable[[BenchAccounts, contextlib.ExitStack], Callable[[random.Random], str]]


def _project_worker(
    bench: BenchAccounts, resources: contextlib.ExitStack
) -> Callable[[random.Random], str]:
    """Load the accounts once; return one transfer through the service (Django's own
    connection is closed by the worker)."""
    from payments.services import transfer_create

    merchant, accounts = _load_accounts(bench)

    def transfer(rng: random.Random) -> str:
        source, destination = bench.pick(rng)
        created = transfer_create(
            merchant=merchant,
            source=accounts[source],
            destination=accounts[destination],
            amount=rng.randint(MIN_AMOUNT, MAX_AMOUNT),
        )
        return str(created.status)

    return transfer


def _reference_connection() -> psycopg.Connection:
    """A raw autocommit connection with the same parameters as Django's."""
    params = connections["default"].get_connection_params()
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    return psycopg.connect(**params, autocommit=True)


def _reference_worker(
    bench: BenchAccounts, resources: contextlib.ExitStack
) -> Callable[[random.Random], str]:
    """Open a raw connection; return one transfer through the PL/pgSQL function."""
    conn = resources.enter_context(_reference_connection())
    call = f"SELECT {REFERENCE_FUNCTION}(%s, %s, %s)"
    call_failed = f"SELECT {REFERENCE_FUNCTION}(%s, %s, %s, %s)"

    def transfer(rng: random.Random) -> str:
        source, destination = bench.pick(rng)
        amount = rng.randint(MIN_AMOUNT, MAX_AMOUNT)
        try:
            conn.execute(call, (source, destination, amount))
        except psycopg.errors.RaiseException as decline:
            # Like the project: the declined attempt rolled back, the failure is stored.
            code = decline.diag.message_primary or "declined"
            conn.execute(call_failed, (source, destination, amount, code))
            return "failed"
        return "succeeded"

    return transfer


def _worker_main(
    make_transfer: TransferFactory,
    bench: BenchAccounts,
    ready: Any,
    start: Any,
    deadline: Any,
    results: Any,
) -> None:
    """The body of a forked worker: set up, wait for the common start, call transfers
    until the shared deadline, send the counts and latencies back."""
    connections.close_all()  # start clean: nothing of the parent's connections is reused
    result = WorkerResult()
    resources = contextlib.ExitStack()
    try:
        transfer = make_transfer(bench, resources)
        rng = random.Random()  # noqa: S311 - workload, not crypto; seeded from urandom
        ready.wait(timeout=_SETUP_TIMEOUT)
        start.wait(timeout=_SETUP_TIMEOUT)
        stop_at = deadline.value
        latencies = result.latencies
        clock = time.perf_counter
        while time.monotonic() < stop_at:
            began = clock()
            try:
                status = transfer(rng)
            except Exception as error:  # counted and sampled; the loop goes on
                result.record_error(error)
            else:
                if status == "succeeded":
                    result.succeeded += 1
                else:
                    result.failed += 1
            latencies.append(clock() - began)
        result.finished_at = time.monotonic()
    except BaseException as error:
        result.record_error(error)
        result.error_samples.append(traceback.format_exc(limit=5))
        ready.abort()  # release the others rather than let them wait out the timeout
    finally:
        resources.close()
        connections.close_all()
        results.put(result)


def run_workers(
    *,
    name: str,
    make_transfer: TransferFactory,
    bench: BenchAccounts,
    workers: int,
    seconds: float,
) -> RunResult:
    """Fork `workers` processes that call transfers together for `seconds`."""
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(workers + 1)
    start = context.Event()
    deadline = context.Value("d", 0.0)
    results = context.Queue()
    connections.close_all()  # a forked child must never share the parent's socket
    processes = [
        context.Process(
            target=_worker_main,
            args=(make_transfer, bench, ready, start, deadline, results),
            name=f"bench-{name}-{index}",
            daemon=True,
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        # A worker that failed its setup breaks the barrier; its result says why.
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=_SETUP_TIMEOUT)
        started_at = time.monotonic()
        deadline.value = started_at + seconds
        start.set()
        try:
            collected = [results.get(timeout=seconds + _SETUP_TIMEOUT) for _ in processes]
        except queue.Empty:
            codes = [process.exitcode for process in processes]
            raise RuntimeError(
                f"a {name} worker did not report back (exit codes {codes})"
            ) from None
        for process in processes:
            process.join(timeout=_SETUP_TIMEOUT)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
    latencies = sorted(value for result in collected for value in result.latencies)
    finished_at = max((result.finished_at for result in collected), default=started_at)
    return RunResult(
        name=name,
        workers=workers,
        elapsed=max(finished_at - started_at, 0.0),
        succeeded=sum(result.succeeded for result in collected),
        failed=sum(result.failed for result in collected),
        errors=sum(result.errors for result in collected),
        error_samples=[sample for result in collected for sample in result.error_samples],
        latencies=latencies,
    )


def project_run(*, bench: BenchAccounts, workers: int, seconds: float) -> RunResult:
    return run_workers(
        name="project", make_transfer=_project_worker, bench=bench, workers=workers, seconds=seconds
    )


def reference_run(*, bench: BenchAccounts, workers: int, seconds: float) -> RunResult:
    return run_workers(
        name="reference",
        make_transfer=_reference_worker,
        bench=bench,
        workers=workers,
        seconds=seconds,
    )


# --- the reference: the same transfer as one PL/pgSQL function --------------------------

# The project's writes, in the project's order: the ledger transaction and its audit row,
# the transfer with its audit row and event (all before any lock, like `before_lock`),
# then the two accounts locked in id order, checked, updated in one statement, and the two
# entries inserted with balance_after. Every NOT NULL column is given: Django's defaults
# live in Python, not in the tables. A decline raises (rolling the attempt back); the
# caller then records the failed transfer with `p_failure_code`, as `transfer_create` does.
_REFERENCE_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION {function}(
    p_source bigint, p_destination bigint, p_amount bigint, p_failure_code text DEFAULT NULL
) RETURNS text LANGUAGE plpgsql AS $reference$
DECLARE
    v_merchant bigint;
    v_currency text;
    v_destination_currency text;
    v_source_public text;
    v_destination_public text;
    v_ltx bigint;
    v_ltx_public text := 'ltx_ref_' || substr(md5(random()::text), 1, 22);
    v_public text := 'tr_ref_' || substr(md5(random()::text), 1, 22);
    v_status text := CASE WHEN p_failure_code IS NULL THEN 'succeeded' ELSE 'failed' END;
    v_now timestamptz := clock_timestamp();
    v_data jsonb;
    v_account record;
BEGIN
    -- What transfer_create already holds in memory (its Account objects): no lock.
    SELECT s.merchant_id, s.currency, s.public_id, d.currency, d.public_id
      INTO v_merchant, v_currency, v_source_public, v_destination_currency,
           v_destination_public
      FROM accounts_account s, accounts_account d
     WHERE s.id = p_source AND d.id = p_destination;

    IF p_failure_code IS NULL THEN
        INSERT INTO ledger_ledgertransaction (public_id, kind, description, reverses_id,
                                              created_at)
        VALUES (v_ltx_public, 'transfer', '', NULL, v_now)
        RETURNING id INTO v_ltx;
        INSERT INTO audit_auditlog (created_at, actor_type, actor, action, object_type,
                                    object_id, old_values, new_values, changed_fields,
                                    reason, request_id, client_request_id, ip_address,
                                    user_agent)
        VALUES (v_now, {actor_type}, {actor}, 'ledger_transaction.posted',
                'ledger_transaction', v_ltx_public, '{{}}',
                jsonb_build_object(
                    'id', v_ltx_public, 'kind', 'transfer', 'description', '',
                    'reverses', NULL,
                    'legs', jsonb_build_array(
                        jsonb_build_object('account', v_source_public,
                                           'amount', -p_amount, 'currency', v_currency),
                        jsonb_build_object('account', v_destination_public,
                                           'amount', p_amount, 'currency', v_currency))),
                '["description", "id", "kind", "legs"]', '', {request_id}, '', NULL, '');
    END IF;

    v_data := jsonb_build_object(
        'id', v_public, 'object', 'transfer',
        'source_account', v_source_public, 'destination_account', v_destination_public,
        'amount', p_amount, 'currency', v_currency,
        'destination_amount', p_amount, 'destination_currency', v_destination_currency,
        'fx_rate', NULL, 'status', v_status,
        'failure_code', p_failure_code, 'failure_message', p_failure_code,
        'description', '', 'metadata', '{{}}'::jsonb,
        'ledger_transaction', CASE WHEN v_ltx IS NULL THEN NULL ELSE v_ltx_public END,
        'created', v_now);
    INSERT INTO payments_transfer (public_id, merchant_id, source_account_id,
                                   destination_account_id, amount, currency,
                                   destination_amount, destination_currency, fx_rate, status,
                                   failure_code, failure_message, description, metadata,
                                   ledger_transaction_id, created_at)
    VALUES (v_public, v_merchant, p_source, p_destination, p_amount, v_currency, p_amount,
            v_destination_currency, NULL, v_status, coalesce(p_failure_code, ''),
            coalesce(p_failure_code, ''), '', '{{}}', v_ltx, v_now);
    INSERT INTO audit_auditlog (created_at, actor_type, actor, action, object_type,
                                object_id, old_values, new_values, changed_fields, reason,
                                request_id, client_request_id, ip_address, user_agent)
    VALUES (v_now, {actor_type}, {actor}, 'transfer.' || v_status, 'transfer', v_public,
            '{{}}', v_data,
            (SELECT jsonb_agg(key ORDER BY key) FROM jsonb_each(v_data)
              WHERE value <> 'null'::jsonb),
            '', {request_id}, '', NULL, '');
    INSERT INTO audit_event (public_id, merchant_id, type, object_type, object_id, data,
                             created_at)
    VALUES ('evt_ref_' || substr(md5(random()::text), 1, 22), v_merchant,
            'transfer.' || v_status, 'transfer', v_public, jsonb_build_object('object', v_data),
            v_now);
    IF p_failure_code IS NOT NULL THEN
        RETURN v_public;
    END IF;

    FOR v_account IN
        SELECT id, public_id, kind, status, balance, held, overdraft_limit
          FROM accounts_account WHERE id IN (p_source, p_destination)
         ORDER BY id FOR NO KEY UPDATE
    LOOP
        IF v_account.status <> 'active' THEN
            RAISE EXCEPTION 'account_inactive';
        END IF;
        IF v_account.id = p_source AND v_account.kind = 'wallet'
           AND v_account.balance - p_amount - v_account.held < -v_account.overdraft_limit THEN
            RAISE EXCEPTION 'insufficient_funds';
        END IF;
    END LOOP;

    WITH moved AS (
        UPDATE accounts_account AS a SET balance = a.balance + v.delta
          FROM (VALUES (p_source, -p_amount, 0), (p_destination, p_amount, 1))
               AS v(id, delta, leg)
         WHERE a.id = v.id
        RETURNING a.id, a.currency, a.balance, v.delta, v.leg
    )
    INSERT INTO ledger_ledgerentry (transaction_id, account_id, amount, currency,
                                    balance_after, created_at)
    SELECT v_ltx, id, delta, currency, balance, clock_timestamp() FROM moved ORDER BY leg;
    RETURN v_public;
END
$reference$
"""


def _reference_function_sql() -> sql.Composed:
    context = current_context()
    return sql.SQL(_REFERENCE_FUNCTION_SQL).format(
        function=sql.Identifier(REFERENCE_FUNCTION),
        actor_type=sql.Literal(context.actor_type),
        actor=sql.Literal(context.actor),
        request_id=sql.Literal(context.request_id),
    )


def reference_function_create() -> None:
    """(Re)create the reference function; the audit context is baked into it."""
    with _reference_connection() as conn:
        conn.execute(_reference_function_sql())


def reference_function_drop() -> None:
    with _reference_connection() as conn:
        conn.execute(
            sql.SQL("DROP FUNCTION IF EXISTS {}(bigint, bigint, bigint, text)").format(
                sql.Identifier(REFERENCE_FUNCTION)
            )
        )


# --- invariants after the run -------------------------------------------------------------


def invariant_breaks(*, since: datetime) -> tuple[str, list[str]]:
    """Check the invariants after the runs with `reconcile_ledger` (its I1 over the
    transactions since `since`, the rest over everything). Returns which run checked and
    the breaks (empty when everything holds)."""
    run = reconcile_ledger(since=since)
    breaks = [f"{item['check']} {item['object']}: {item['message']}" for item in run.breaks]
    if run.status != "ok" and not breaks:
        breaks = [f"reconciliation run {run.pk} ended {run.status}"]
    return f"reconcile_ledger, run {run.pk}", breaks


def ratio_line(project: RunResult, reference: RunResult) -> str:
    ratio = project.throughput / reference.throughput if reference.throughput else math.nan
    return f"ratio project/reference throughput: {ratio:.2f} ({ratio:.0%} of the reference)"


def describe_statements(statements: Sequence[str]) -> list[str]:
    """One short line per statement, for `-v 2`."""
    return [" ".join(statement.split())[:110] for statement in statements]
