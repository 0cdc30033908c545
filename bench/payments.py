"""Pay-ins end to end through the real processes: `POST /api/v1/payments` sent to the
production server (bin/serve), the attempts' tasks run by a Celery worker process, the
provider calls answered by the provider simulator over HTTP. It measures how fast the API
accepts payments (202, the provider not called yet) and how fast they settle (from the
payment's creation to `succeeded`, by the database's timestamps), then checks that every
payment settled exactly once: one charge per attempt key at the simulator, one ledger
posting per succeeded payment, nothing left processing, the ledger reconciled.

Used by `manage.py bench_payments` (see docs/benchmarks.md). The load comes from wrk (the
C HTTP benchmarking tool, with the Lua frame of bench_api) when it is installed, else from
httpx; either closed loop (each client sends its next payment once the last is answered)
or paced (`rate`: payments per second in all).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import redis
from celery import Celery
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from accounts.api_keys import api_key_create
from accounts.models import Account, Merchant
from accounts.services import account_create, merchant_create, merchant_default_provider_set
from audit.models import DeadLetter
from bench.api import (
    HTTPX,
    WRK,
    BenchError,
    EndpointStats,
    RunningServer,
    ServerOptions,
    cpu_line,
    cpu_sample,
    database_url,
    parse_wrk_output,
    server_running,
    wrk_command,
    wrk_script,
)
from bench.transfers import CURRENCY, MAX_AMOUNT, MIN_AMOUNT, invariant_breaks
from ledger.models import LedgerTransaction, LedgerTransactionKind
from payments.fees import pricing_set
from payments.models import Payment, PaymentAttempt, PaymentStatus

ENDPOINT = "POST /api/v1/payments"
CLIENTS = (HTTPX, WRK)
# Payment methods and their shares; each ends as SPEC §4.6 says.
MIXES: dict[str, dict[str, float]] = {
    "visa": {"pm_card_visa": 1.0},
    "spec": {
        "pm_card_visa": 0.8,
        "pm_card_flaky": 0.04,  # a 500 first, then success: retried inside the call
        "pm_card_declined": 0.04,
        "pm_card_insufficient_funds": 0.04,
        "pm_card_expired": 0.04,
        "pm_card_fraud": 0.04,
    },
}
SUCCEEDING = {"pm_card_visa", "pm_card_flaky"}
# The bench's pricing: every settled payment posts a fee too, as a priced merchant's do.
PRICING_BPS = 250
# The bar on the 2-core machine, reported (not enforced) after each run.
BAR_ACCEPTED_PER_SECOND, BAR_ACCEPTED_P99_MS = 300, 50.0
BAR_SETTLED_PER_SECOND, BAR_SETTLED_P99_S = 100, 2.0

_READY_TIMEOUT = 60.0
_REQUEST_TIMEOUT = 30.0
_WORKER_LOG_PROBLEMS = ("Traceback", "ERROR/", "CRITICAL/", '"level": "ERROR"')

# wrk's request(): a payment into the bench's account, its method drawn from the mix
# (cumulative shares). `counter`, `id`, `run_id` and `prefix` are the frame's.
_WRK_PAYMENT_REQUEST = """local account, currency = {account}, {currency}
local min_amount, max_amount = {min_amount}, {max_amount}
local methods = {{{methods}}}

function request()
  counter = counter + 1
  local headers = {{}}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = run_id .. "-" .. id .. "-" .. counter
  local draw, method = math.random(), methods[#methods][1]
  for _, entry in ipairs(methods) do
    if draw < entry[2] then method = entry[1]; break end
  end
  local body = string.format(
    '{{"amount": %d, "currency": "%s", "destination_account": "%s", "payment_method": "%s"}}',
    math.random(min_amount, max_amount), currency, account, method)
  return wrk.format("POST", prefix .. "/api/v1/payments", headers, body)
end
"""


@dataclass(frozen=True)
class WorkerOptions:
    """How to start the Celery worker: its pool (threads, prefork, solo), concurrency and
    prefetch multiplier. Threads: the task mostly waits (on PostgreSQL, on the provider),
    and a thread pool costs a third of prefork's CPU a payment (docs/benchmarks.md)."""

    pool: str = "threads"
    concurrency: int = 8
    prefetch: int = 4


@dataclass(frozen=True)
class PaymentsBenchOptions:
    url: str | None
    broker: str
    clients: int
    seconds: float
    rate: float | None
    mix: str
    provider: str
    drain: float
    server: ServerOptions
    worker: WorkerOptions
    client: str = WRK
    verbose: bool = False


@dataclass(frozen=True)
class Process:
    """A child process of the bench (its own session) and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, count: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-count:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to its group, then SIGKILL after 15 s."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own commands
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the bench, which stops it
        )
    return Process(process, log)


def _wait_for(what: str, process: Process, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while not ready():
        if process.process.poll() is not None:
            raise BenchError(
                f"{what} exited with status {process.process.returncode}; its log:\n"
                + process.tail()
            )
        if time.monotonic() > deadline:
            raise BenchError(
                f"{what} not ready in {_READY_TIMEOUT:g} s; its log:\n{process.tail()}"
            )
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def simulator_running(directory: Path) -> Iterator[tuple[str, Process]]:
    """`run_provider_simulator` on a free port, its store in `directory`; its URL."""
    port = _free_port()
    process = _spawn(
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "run_provider_simulator",
            "--port",
            str(port),
            "--store",
            str(directory / "simulator.sqlite3"),
            "--webhook-url",
            "",
        ],
        directory / "simulator.log",
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/_simulator/faults", timeout=2, trust_env=False).is_success
        except httpx.TransportError:
            return False

    try:
        _wait_for("the provider simulator", process, answers)
        yield url, process
    finally:
        process.stop()


def process_env(*, broker: str, simulator_url: str) -> dict[str, str]:
    """What the server and the worker share: this database, the broker (also where the
    circuit breakers keep their state), tasks sent to it, the simulator over HTTP."""
    return {
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": broker,
        "CELERY_EAGER": "false",
        # DEBUG (the demo's default) keeps every query in memory and costs the worker a
        # third more CPU a task.
        "DEBUG": "false",
        "PROVIDER_SIMULATOR_URL": simulator_url,
        "API_KEY_HASH_SECRET": settings.API_KEY_HASH_SECRET,
    }


def _worker_answers(broker: str, hostname: str) -> bool:
    """Whether the worker answers a ping through `broker` (its "ready" line is logged at
    INFO, below the bench worker's level). An app of its own: the project's sends through
    its own broker's pool, whatever connection it is given."""
    pinger = Celery("bench_payments", broker=broker, set_as_current=False)
    try:
        return bool(pinger.control.ping(destination=[hostname], timeout=0.5))
    finally:
        pinger.close()


@contextlib.contextmanager
def worker_running(
    options: WorkerOptions, env: dict[str, str], directory: Path
) -> Iterator[Process]:
    """`celery -A config worker`, answering; stopped (warm) on the way out."""
    hostname = f"bench_payments-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    process = _spawn(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "config",
            "worker",
            "--pool",
            options.pool,
            "--concurrency",
            str(options.concurrency),
            "--prefetch-multiplier",
            str(options.prefetch),
            "--hostname",
            hostname,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            # Two INFO lines a task ("received", "succeeded") cost the worker CPU.
            "--loglevel",
            "WARNING",
        ],
        directory / "worker.log",
        {**os.environ, **env, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_for("the Celery worker", process, lambda: _worker_answers(env["REDIS_URL"], hostname))
        yield process
    finally:
        process.stop()


# --- setup ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchMerchant:
    merchant: Merchant
    secret: str
    account: Account


def bench_merchant_create(provider: str) -> BenchMerchant:
    """A merchant whose payments go to `provider`, priced, with a USD wallet and an API
    key."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    merchant = merchant_create(name=f"Payments bench {stamp}")
    merchant = merchant_default_provider_set(merchant=merchant, provider=provider)
    pricing_set(merchant=merchant, currency=CURRENCY, percent_bps=PRICING_BPS, fixed_fee=0)
    _, secret = api_key_create(merchant=merchant, name="bench_payments")
    account = account_create(merchant=merchant, currency=CURRENCY)
    return BenchMerchant(merchant, secret, account)


# --- load -------------------------------------------------------------------------------


@dataclass
class Acceptance:
    stats: EndpointStats
    elapsed: float

    @property
    def per_second(self) -> float:
        return self.stats.count / self.elapsed if self.elapsed > 0 else 0.0


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cumulative(mix: str) -> list[tuple[str, float]]:
    total, shares = 0.0, []
    for method, share in MIXES[mix].items():
        total += share
        shares.append((method, total))
    return shares


def _wrk_load(plan: PaymentsBenchOptions, base_url: str, bench: BenchMerchant) -> Acceptance:
    wrk = shutil.which(WRK)
    if wrk is None:
        raise BenchError("wrk is not installed; use --client httpx")
    request_code = _WRK_PAYMENT_REQUEST.format(
        account=_lua(bench.account.public_id),
        currency=_lua(CURRENCY),
        min_amount=MIN_AMOUNT,
        max_amount=MAX_AMOUNT,
        methods=", ".join(f"{{{_lua(m)}, {share!r}}}" for m, share in _cumulative(plan.mix)),
    )
    script = wrk_script(
        request_code=request_code,
        expected={"202"},
        secret=bench.secret,
        base_url=base_url,
        seconds=plan.seconds,
        interval=1 / plan.rate if plan.rate else 0.0,
    )
    with tempfile.TemporaryDirectory(prefix="bench_payments-wrk-") as name:
        path = Path(name) / "payments.lua"
        path.write_text(script)
        process = subprocess.Popen(  # noqa: S603 - wrk, and our arguments
            wrk_command(wrk, plan.clients, plan.seconds, path, base_url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = process.communicate()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    try:
        stats, elapsed = parse_wrk_output(out)
    except (BenchError, ValueError) as error:
        raise BenchError(
            f"wrk exited with status {process.returncode}: {error}; its output:\n"
            f"{(out + err)[-2000:]}"
        ) from error
    return Acceptance(stats, elapsed)


async def _httpx_load(
    plan: PaymentsBenchOptions, base_url: str, bench: BenchMerchant
) -> Acceptance:
    stats = EndpointStats()
    shares = _cumulative(plan.mix)
    clock = time.perf_counter
    started = clock()
    deadline = started + plan.seconds
    interval = plan.clients / plan.rate if plan.rate else 0.0  # per client
    finished = started

    async def client(client: httpx.AsyncClient, index: int) -> None:
        nonlocal finished
        rng = random.Random()  # noqa: S311 - workload, not crypto
        slot = started + (interval * index / plan.clients)
        while (slot if interval else clock()) < deadline:
            if interval:
                await asyncio.sleep(max(0.0, slot - clock()))
                slot += interval
            draw = rng.random()
            method = next((m for m, edge in shares if draw < edge), shares[-1][0])
            body = {
                "amount": rng.randint(MIN_AMOUNT, MAX_AMOUNT),
                "currency": CURRENCY,
                "destination_account": bench.account.public_id,
                "payment_method": method,
            }
            began = clock()
            try:
                response = await client.post(
                    "/api/v1/payments", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
            except httpx.HTTPError as error:
                stats.record(clock() - began, f"error:{type(error).__name__}", {"202"}, str(error))
                continue
            finished = clock()
            stats.record(finished - began, str(response.status_code), {"202"}, response.text)

    limits = httpx.Limits(max_connections=plan.clients, max_keepalive_connections=plan.clients)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {bench.secret}"},
        limits=limits,
        timeout=_REQUEST_TIMEOUT,
        trust_env=False,
    ) as http:
        await asyncio.gather(*(client(http, index) for index in range(plan.clients)))
    return Acceptance(stats, max(finished - started, 0.0))


# --- settlement and checks --------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """The bench's payments once drained: how many, by status; the times from creation to
    `succeeded`; the span from the first creation to the last settlement."""

    by_status: Counter[str]
    seconds_to_settle: list[float]
    span: float
    drained_in: float

    @property
    def settled(self) -> int:
        return len(self.seconds_to_settle)

    @property
    def per_second(self) -> float:
        return self.settled / self.span if self.span > 0 else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.seconds_to_settle:
            return math.nan
        ordered = sorted(self.seconds_to_settle)
        return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def drain(merchant: Merchant, seconds: float) -> float:
    """Wait (at most `seconds`) until none of the merchant's payments is processing;
    returns how long it took."""
    began = time.monotonic()
    processing = Payment.objects.filter(merchant=merchant, status=PaymentStatus.PROCESSING)
    while processing.exists() and time.monotonic() - began < seconds:
        time.sleep(0.2)
    return time.monotonic() - began


def settlement(merchant: Merchant, drained_in: float) -> Settlement:
    rows = list(
        Payment.objects.filter(merchant=merchant).values_list("status", "created_at", "updated_at")
    )
    by_status = Counter(status for status, _, _ in rows)
    settled = [(c, u) for status, c, u in rows if status == PaymentStatus.SUCCEEDED]
    first: datetime | None = min((c for _, c, _ in rows), default=None)
    last: datetime | None = max((u for _, u in settled), default=None)
    span = (last - first).total_seconds() if first and last else 0.0
    return Settlement(
        by_status=by_status,
        seconds_to_settle=[(u - c).total_seconds() for c, u in settled],
        span=span,
        drained_in=drained_in,
    )


def settled_once_violations(
    bench: BenchMerchant, *, accepted: int, charges: Charges
) -> tuple[str, list[str]]:
    """Every accepted payment exists and ended as its method says; each succeeded one was
    charged once (by its attempt's key, and by its reference) and posted once; the
    declined ones never; the account holds the sum of the nets."""
    violations = []
    payments = list(
        Payment.objects.filter(merchant=bench.merchant).values_list(
            "public_id", "status", "payment_method", "net", "provider"
        )
    )
    if len(payments) != accepted:
        violations.append(f"{accepted} payments answered 202, but {len(payments)} exist")
    wrong_end = [
        f"{public_id} ({method}) {status}"
        for public_id, status, method, _, _ in payments
        if status != (PaymentStatus.SUCCEEDED if method in SUCCEEDING else PaymentStatus.FAILED)
    ]
    if wrong_end:
        violations.append(
            f"{len(wrong_end)} payments did not end as their method says, e.g. "
            + ", ".join(wrong_end[:5])
        )
    by_reference = charges.by_reference
    succeeded = {p for p, status, *_ in payments if status == PaymentStatus.SUCCEEDED}
    charged_wrong = [
        f"{public_id}: {by_reference.get(provider, {}).get(public_id, 0)}"
        for public_id, status, _, _, provider in payments
        if by_reference.get(provider, {}).get(public_id, 0) != int(public_id in succeeded)
    ]
    if charged_wrong:
        violations.append(
            f"{len(charged_wrong)} payments charged other than once if succeeded (never if "
            "not), by the simulator's count per payment, e.g. " + ", ".join(charged_wrong[:5])
        )
    attempts = PaymentAttempt.objects.filter(payment__merchant=bench.merchant).values_list(
        "public_id", "provider"
    )
    keys_charged_twice = [
        key for key, provider in attempts if charges.by_key.get(provider, {}).get(key, 0) > 1
    ]
    if keys_charged_twice:
        violations.append(
            f"{len(keys_charged_twice)} attempt keys charged more than once, e.g. "
            + ", ".join(keys_charged_twice[:5])
        )
    postings = Counter(
        dict(
            LedgerTransaction.objects.filter(
                kind=LedgerTransactionKind.PAYMENT,
                entries__account=bench.account,
            )
            .values_list("description")
            .annotate(count=Count("id", distinct=True))
            .values_list("description", "count")
        )
    )
    posted_wrong = [
        public_id for public_id in succeeded if postings.get(f"Payment {public_id}", 0) != 1
    ]
    if posted_wrong or sum(postings.values()) != len(succeeded):
        violations.append(
            f"{len(succeeded)} payments succeeded but {sum(postings.values())} payment "
            f"postings credit the bench account; not posted once: {posted_wrong[:5]}"
        )
    bench.account.refresh_from_db()
    nets = sum(net for _, status, _, net, _ in payments if status == PaymentStatus.SUCCEEDED)
    if bench.account.balance != nets:
        violations.append(
            f"the bench account holds {bench.account.balance}, the succeeded payments' nets "
            f"sum to {nets}"
        )
    dead = DeadLetter.objects.filter(
        object_type="payment_attempt", object_id__in=[key for key, _ in attempts]
    ).count()
    if dead:
        violations.append(f"{dead} dead letters for the bench's attempts")
    summary = (
        f"{len(payments)} payments = {accepted} answered 202; {len(succeeded)} succeeded, "
        f"each charged once at the simulator and posted once; account balance "
        f"{bench.account.balance} = sum of nets {nets}"
    )
    return summary, violations


@dataclass(frozen=True)
class Charges:
    """The simulator's count of charges per provider: by idempotency key (our attempt's
    id) and by Moneta reference (the payment's id)."""

    by_key: dict[str, dict[str, int]]
    by_reference: dict[str, dict[str, int]]


def simulator_charges(url: str) -> Charges:
    def read(**params: str) -> dict[str, dict[str, int]]:
        response = httpx.get(
            f"{url}/_simulator/charges", params=params, timeout=30, trust_env=False
        )
        response.raise_for_status()
        counts: dict[str, dict[str, int]] = response.json()
        return counts

    return Charges(by_key=read(), by_reference=read(by="reference"))


def worker_problems(worker: Process) -> list[str]:
    try:
        lines = worker.log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if any(p in line for p in _WORKER_LOG_PROBLEMS)]


# --- where the CPU goes ---------------------------------------------------------------


def _cpu_seconds(pid: int, stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_group(groups: dict[str, int], database: str) -> dict[str, float]:
    """CPU seconds used so far by the live processes of each process group (by name), and
    by the PostgreSQL backends connected to `database` (`postgres`: a backend's command
    line names its database; the cluster's own processes and other databases' backends
    are left out)."""
    used = dict.fromkeys([*groups, "postgres"], 0.0)
    names = {pgid: name for name, pgid in groups.items()}
    backend = f" {database} ".encode()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                stat = stat_file.read()
            command, rest = stat.split(" (", 1)[1].rsplit(")", 1)
            group = int(rest.split()[2])
            if group in names:
                used[names[group]] += _cpu_seconds(int(entry), stat)
            elif command == "postgres":
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if backend in cmdline.read():
                        used["postgres"] += _cpu_seconds(int(entry), stat)
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
    return used


def cpu_split_line(
    before: dict[str, float], after: dict[str, float], wall: float, payments: int
) -> str:
    """Each part's CPU per payment and its share of one core over `wall` seconds."""
    parts = []
    for name in after:
        seconds = after[name] - before.get(name, 0.0)
        per = f"{1000 * seconds / payments:.2f} ms" if payments else "-"
        parts.append(f"{name} {per} ({100 * seconds / wall:.0f}%)")
    return "CPU a payment, load start to drained (share of one core): " + ", ".join(parts)


# --- the whole run ------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def queued_tasks(broker: str) -> int:
    """Tasks waiting in the broker's default queue (Celery's `celery` list in Redis)."""
    client = redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=2)
    try:
        return int(client.llen("celery"))
    except redis.RedisError as error:
        raise BenchError(f"the broker {broker} does not answer: {error}") from error
    finally:
        client.close()


def bench_run(options: PaymentsBenchOptions, write: Callable[[str], None]) -> list[str]:
    """Start what is needed, load, drain, report, check. Returns the violations."""
    waiting = queued_tasks(options.broker)
    if waiting:
        # The bench's worker would run them too, and charge their CPU to the bench.
        raise BenchError(
            f"the broker {options.broker} already holds {waiting} tasks: give the bench a "
            "Redis database of its own (--broker), or let a worker finish them"
        )
    began = timezone.now()
    bench = bench_merchant_create(options.provider)
    pace = f"paced at {options.rate:g} payments/s" if options.rate else "closed loop"
    write(
        f"bench_payments on {connection.settings_dict['NAME']}: mix {options.mix}, "
        f"{options.clients} {options.client} clients, {pace}, {options.seconds:g} s, "
        f"provider {options.provider}; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at start"
    )
    headers = {"Authorization": f"Bearer {bench.secret}"}
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_payments-")))
        simulator_url, simulator = stack.enter_context(simulator_running(directory))
        env = process_env(broker=options.broker, simulator_url=simulator_url)
        worker = stack.enter_context(worker_running(options.worker, env, directory))
        write(
            f"worker: celery --pool {options.worker.pool} --concurrency "
            f"{options.worker.concurrency} --prefetch-multiplier {options.worker.prefetch}; "
            f"broker {options.broker}; simulator {simulator_url}"
        )
        server: RunningServer | None = None
        if options.url:
            base_url = options.url.rstrip("/")
            write(f"server: {base_url} (given: it must send tasks to {options.broker})")
        else:
            server_options = ServerOptions(
                workers=options.server.workers,
                threads=options.server.threads,
                rate_limit=options.server.rate_limit,
                extra_env=(*env.items(), *options.server.extra_env),
            )
            server, ready = stack.enter_context(
                server_running(
                    server_options, ready_path="/api/v1/payments?page_size=1", headers=headers
                )
            )
            if ready.status_code != 200:
                raise BenchError(f"the server answered {ready.status_code}: {ready.text[:500]}")
            base_url = server.url
            processes, threads = server.log.shape()
            write(f"server: uWSGI via bin/serve on {base_url}, {processes} × {threads} threads")
        groups = {"server": server.process.pid} if server is not None else {}
        groups.update(worker=worker.process.pid, simulator=simulator.process.pid)
        database = str(connection.settings_dict["NAME"])
        cpu_before, began_load = cpu_by_group(groups, database), time.monotonic()
        before = cpu_sample(server)
        if options.client == WRK:
            acceptance = _wrk_load(options, base_url, bench)
        else:
            acceptance = asyncio.run(_httpx_load(options, base_url, bench))
        after = cpu_sample(server)
        drained_in = drain(bench.merchant, options.drain)
        cpu_after, load_wall = cpu_by_group(groups, database), time.monotonic() - began_load
        result = settlement(bench.merchant, drained_in)
        charges = simulator_charges(simulator_url)
        problems = server.log.problems() if server is not None else []
        problems += worker_problems(worker)
        if options.verbose:
            write("worker log (last lines):")
            for line in worker.tail(20).splitlines():
                write(f"  {line}")

    stats = acceptance.stats
    write(
        f"accepted  {ENDPOINT}: {acceptance.per_second:7.1f} req/s  p50 "
        f"{stats.percentile_ms(0.5):6.2f} ms  p99 {stats.percentile_ms(0.99):6.2f} ms  "
        f"n {stats.count}  " + "  ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
    )
    write(
        f"settled   creation → succeeded: {result.per_second:7.1f} payments/s  p50 "
        f"{_ms(result.percentile(0.5))}  p99 {_ms(result.percentile(0.99))}  n {result.settled}"
        f" over {result.span:.1f} s (drained {result.drained_in:.1f} s after the load); "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items()))
    )
    write(cpu_line(before, after, stats.count))
    write(cpu_split_line(cpu_before, cpu_after, load_wall, stats.count))
    accepted_met = (
        acceptance.per_second >= BAR_ACCEPTED_PER_SECOND
        and stats.percentile_ms(0.99) < BAR_ACCEPTED_P99_MS
    )
    settled_met = (
        result.per_second >= BAR_SETTLED_PER_SECOND and result.percentile(0.99) < BAR_SETTLED_P99_S
    )
    write(
        f"bar: accepted ≥ {BAR_ACCEPTED_PER_SECOND}/s with p99 < {BAR_ACCEPTED_P99_MS:g} ms: "
        f"{'met' if accepted_met else 'NOT met'}; settled ≥ {BAR_SETTLED_PER_SECOND}/s with "
        f"p99 < {BAR_SETTLED_P99_S:g} s: {'met' if settled_met else 'NOT met'}"
    )

    violations = []
    unexpected = {k: v for k, v in stats.statuses.items() if k != "202"}
    if unexpected:
        violations.append(
            f"{ENDPOINT}: unexpected outcomes {unexpected}; e.g. " + " | ".join(stats.samples)
        )
    left = result.by_status.get(PaymentStatus.PROCESSING, 0)
    if left:
        violations.append(f"{left} payments still processing {options.drain:g} s after the load")
    if problems:
        violations.append(
            f"the server or the worker logged {len(problems)} problem lines, e.g. "
            + " | ".join(problems[:3])
        )
    summary, settled_violations = settled_once_violations(
        bench, accepted=stats.statuses.get("202", 0), charges=charges
    )
    violations += settled_violations
    write(f"settled once: {'ok' if not settled_violations else 'BROKEN'} ({summary})")
    checker, breaks = invariant_breaks(since=began)
    violations += breaks
    write(f"invariants: {'ok' if not breaks else 'BROKEN'} (checked by {checker})")
    return violations
