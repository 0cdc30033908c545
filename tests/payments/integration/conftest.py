"""Payments end to end: a real Celery worker process (`celery -A config worker`, which a
test can SIGKILL) taking the attempts' tasks from Redis, and the provider simulator as its
own process (`run_provider_simulator`) over HTTP. The test process creates payments through
the services (their tasks go to Redis on commit, as the API's do) and reads the outcome
from the database and the simulator's admin.

Redis database 8 is these tests' broker, and the store of the circuit breakers' state
(REDIS_URL, shared by the test process and the workers, as in production); a module may
take another by overriding the `broker_url` fixture (the refund and payout tests: 10, 11).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from pytest_django.fixtures import Settings

from accounts.models import Account, Merchant
from accounts.services import merchant_default_provider_set
from bench.api import database_url
from ledger.models import LedgerTransaction, LedgerTransactionKind
from ledger.reconciliation import reconcile_ledger
from payments.models import AttemptStatus, Payment, PaymentAttempt, PaymentStatus
from payments.payments import payment_create
from payments.providers.circuit import circuit_force
from payments.providers.registry import PROVIDERS
from tests.factories import AccountFactory, MerchantFactory
from tests.invariants import invariant_violations
from tests.servers import free_port
from tests.workers import tasks_through_broker, wait_until

BROKER_URL = "redis://127.0.0.1:6379/8"
READ_TIMEOUT = 1.0  # the worker's read timeout for both providers
HOLD_SECONDS = 2.0  # how long the simulator holds pm_card_timeout's answer
ASYNC_SECONDS = 0.5  # when the simulator settles pm_card_async
WAIT_SECONDS = 20.0  # the longest any test waits for one outcome

MANAGE = Path(settings.BASE_DIR) / "manage.py"
CELERY = Path(sys.executable).parent / "celery"

# The worker's settings: fast retries, and the janitor's threshold low enough that a test
# sending its task sees an attempt quiet for a second as due.
WORKER_ENV = {
    "CELERY_EAGER": "false",
    "PYTHONUNBUFFERED": "1",  # its log read as it is written
    "LOG_LEVEL": "INFO",
    "STRIPE_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
    "ADYEN_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
    "PROVIDER_RETRY_BASE_DELAY_SECONDS": "0.05",
    "PROVIDER_RETRY_MAX_DELAY_SECONDS": "0.2",
    "PAYMENT_TASK_BACKOFF_SECONDS": "0.2",
    "PAYMENT_TASK_BACKOFF_MAX_SECONDS": "1",
    "PAYMENT_RECOVERY_AFTER_SECONDS": "1",
}


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class SimulatorProcess:
    """`manage.py run_provider_simulator` on a free port, and its admin."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    admin: httpx.Client

    def faults(self, **switches: int) -> None:
        self.admin.post("/_simulator/faults", json=switches).raise_for_status()

    def reset(self) -> None:
        self.admin.post("/_simulator/reset").raise_for_status()

    def charges(self, provider: str, payment: Payment) -> int:
        """Charges the simulator made for `payment` (by its Moneta reference)."""
        counts = self.admin.get("/_simulator/charges", params={"by": "reference"}).json()
        return int(counts[provider].get(payment.public_id, 0))

    def provider_status(self, provider: str, reference: str) -> str:
        """The payment's status as the provider holds it."""
        if provider == "stripe":
            response = self.admin.get(
                f"/v1/payment_intents/{reference}",
                headers={"Authorization": f"Bearer {settings.STRIPE_API_KEY}"},
            )
        else:
            response = self.admin.get(
                f"/adyen/v71/payments/{reference}", headers={"X-API-Key": settings.ADYEN_API_KEY}
            )
        response.raise_for_status()
        return str(response.json()["status"])


@contextlib.contextmanager
def simulator_started(directory: Path, webhook_url: str = "") -> Iterator[SimulatorProcess]:
    """`run_provider_simulator` on a free port, sending its webhooks to `webhook_url`
    (none when empty); stopped on the way out."""
    port = free_port()
    log = directory / "simulator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own command
            [
                sys.executable,
                str(MANAGE),
                "run_provider_simulator",
                "--port",
                str(port),
                "--store",
                str(directory / "store.sqlite3"),
                "--webhook-url",
                webhook_url,
                "--async-seconds",
                str(ASYNC_SECONDS),
                "--timeout-seconds",
                str(HOLD_SECONDS),
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=url, timeout=10, trust_env=False)
    try:
        wait_until(
            lambda: _answers(admin),
            seconds=WAIT_SECONDS,
            interval=0.05,
            what=f"the simulator at {url} to answer",
            seen=lambda: _tail(log),
        )
        yield SimulatorProcess(url, process, log, admin)
    finally:
        admin.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with simulator_started(tmp_path_factory.mktemp("simulator")) as started:
        yield started


def _answers(admin: httpx.Client) -> bool:
    try:
        return admin.get("/_simulator/faults").status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Worker:
    """One `celery -A config worker` process (its own session, so that a SIGKILL reaches
    the pool's children too)."""

    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return _tail(self.log)


@dataclass
class Workers:
    """Starts workers against the test database and the simulator; stops them all."""

    simulator: SimulatorProcess
    directory: Path
    broker_url: str = BROKER_URL
    started: list[Worker] = field(default_factory=list)

    def start(self, **env: str) -> Worker:
        log = self.directory / f"worker-{len(self.started)}.log"
        environment = {
            **os.environ,
            **WORKER_ENV,
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": self.broker_url,
            "PROVIDER_SIMULATOR_URL": self.simulator.url,
            **env,
        }
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own worker
                [
                    str(CELERY),
                    "-A",
                    "config",
                    "worker",
                    "--pool",
                    "threads",
                    "--concurrency",
                    "4",
                    "--hostname",
                    f"integration{len(self.started)}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "INFO",
                ],
                cwd=settings.BASE_DIR,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log)
        self.started.append(worker)
        wait_until(
            lambda: process.poll() is not None or " ready." in log.read_text(errors="replace"),
            seconds=WAIT_SECONDS,
            interval=0.05,
            what="the Celery worker to be ready",
            seen=worker.tail,
        )
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{worker.tail()}")
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture(scope="module")
def broker_url() -> str:
    """The module's broker (and circuit state) database."""
    return BROKER_URL


def _flush_broker(broker_url: str) -> None:
    """Nothing left over from an earlier run: no queued task, no circuit state."""
    client = redis.Redis.from_url(broker_url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="module")
def _broker_flushed(django_db_setup: None, broker_url: str) -> None:
    _flush_broker(broker_url)


@pytest.fixture(scope="module")
def worker(
    simulator: SimulatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
    broker_url: str,
    _broker_flushed: None,
) -> Iterator[Worker]:
    """The module's worker."""
    started = Workers(simulator, tmp_path_factory.mktemp("worker"), broker_url)
    try:
        yield started.start()
    finally:
        started.stop_all()


@pytest.fixture
def workers(
    simulator: SimulatorProcess, tmp_path: Path, broker_url: str, _broker_flushed: None
) -> Iterator[Workers]:
    """Workers of the test's own (to kill), all stopped at its end; then what a killed one
    left unacknowledged in Redis is forgotten, so that no later worker takes it back."""
    started = Workers(simulator, tmp_path, broker_url)
    try:
        yield started
    finally:
        started.stop_all()
        client = redis.Redis.from_url(broker_url)
        try:
            client.delete("unacked", "unacked_index")
        finally:
            client.close()


@pytest.fixture(autouse=True)
def wired(settings: Settings, simulator: SimulatorProcess, broker_url: str) -> Iterator[None]:
    """The test process sends tasks to Redis (not eagerly), routes with the breakers'
    state in the same Redis as the workers, and talks to the same simulator."""
    settings.PROVIDER_SIMULATOR_URL = simulator.url
    settings.PROVIDER_CIRCUIT_STORAGE = "redis"
    with tasks_through_broker(settings, broker_url):
        simulator.reset()
        try:
            yield
        finally:
            simulator.reset()
            for provider in PROVIDERS:
                circuit_force(provider, state="closed")


def describe(payments: Iterable[Payment]) -> str:
    lines = []
    for payment in payments:
        payment.refresh_from_db()
        attempts = [
            f"{a.kind}/{a.provider} {a.status} tries={a.tries} {a.failure_code}"
            for a in PaymentAttempt.objects.filter(payment=payment).order_by("pk")
        ]
        lines.append(f"{payment.public_id} {payment.payment_method}: {payment.status} {attempts}")
    return "\n".join(lines)


def wait_for_status(
    payments: list[Payment], status: str | dict[int, str], worker: Worker | None = None
) -> None:
    """Until every payment has `status` (or its own, by pk): fails with what was seen."""

    def wanted(payment: Payment) -> str:
        return status if isinstance(status, str) else status[payment.pk]

    def arrived() -> bool:
        current = dict(
            Payment.objects.filter(pk__in=[p.pk for p in payments]).values_list("pk", "status")
        )
        return all(current[p.pk] == wanted(p) for p in payments)

    wait_until(
        arrived,
        seconds=WAIT_SECONDS,
        interval=0.05,
        what=f"payments to become {status}",
        seen=lambda: describe(payments) + ("\n" + worker.tail() if worker else ""),
    )
    for payment in payments:
        payment.refresh_from_db()


def wait_for_attempt(attempt: PaymentAttempt, condition: Callable[[PaymentAttempt], bool]) -> None:
    def check() -> bool:
        attempt.refresh_from_db()
        return condition(attempt)

    wait_until(
        check,
        seconds=WAIT_SECONDS,
        interval=0.05,
        what=f"attempt {attempt.public_id}",
        seen=lambda: str(attempt.__dict__),
    )


def ledger_postings(payment: Payment) -> int:
    """The payment's ledger transactions (its capture's, linked or not)."""
    return LedgerTransaction.objects.filter(
        kind=LedgerTransactionKind.PAYMENT, description=f"Payment {payment.public_id}"
    ).count()


MakeMerchant = Callable[[str], tuple[Merchant, Account]]


@pytest.fixture
def merchant_of() -> MakeMerchant:
    """A merchant whose default provider is the one given, and its USD wallet."""

    def make(provider: str) -> tuple[Merchant, Account]:
        merchant = merchant_default_provider_set(
            merchant=MerchantFactory.create(), provider=provider
        )
        return merchant, AccountFactory.create(merchant=merchant, currency="USD")

    return make


def pay(
    merchant: Merchant, wallet: Account, method: str = "pm_card_visa", **fields: Any
) -> Payment:
    """A payment of 25.00 USD into `wallet`; its task goes to Redis on commit."""
    return payment_create(
        merchant=merchant,
        destination=wallet,
        amount=2_500,
        currency="USD",
        payment_method=method,
        **fields,
    )


def assert_reconciled() -> None:
    run = reconcile_ledger()
    assert (run.status, run.breaks) == ("ok", [])
    assert invariant_violations() == {}


def assert_settled_once(payment: Payment, provider: str, simulator: SimulatorProcess) -> None:
    """Succeeded through its one attempt (one key), charged once, posted once."""
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert simulator.charges(provider, payment) == 1
    assert ledger_postings(payment) == 1
    assert payment.attempts.get().status == AttemptStatus.SUCCEEDED
    assert_reconciled()
