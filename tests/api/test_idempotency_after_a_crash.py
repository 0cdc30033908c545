"""Idempotency-Key after a crash (docs/adr/0006-idempotency-keys.md), through the real
server: a transfer claims its key, then waits for the source account's row lock, which
this test holds from a connection of its own. While the worker serving it lives, the same
key answers 409; once that worker is SIGKILLed and PostgreSQL has ended its session, the
retry takes the key over at once (the server's lock timeout is 10 minutes) and moves the
money once."""

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from accounts.api_keys import api_key_create
from accounts.models import Account, Merchant
from accounts.services import account_create, merchant_create
from bench.api import database_url
from core.models import IdempotencyKey, IdempotencyKeyState
from ledger.services import adjustment_post
from payments.models import Transfer
from tests.servers import free_port, serving, uwsgi_pids

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 30


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    database: str  # its DATABASE_URL: the test database


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[Server]:
    """bin/serve with two workers on the test database; a key in flight is taken over after
    its lock timeout only when that is 10 minutes away, so never during these tests."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    port = free_port()
    with serving(
        tmp_path_factory.mktemp("crash"),
        port,
        workers=2,
        DATABASE_URL=url,
        API_KEY_HASH_SECRET=settings.API_KEY_HASH_SECRET,
        IDEMPOTENCY_KEY_LOCK_TIMEOUT_SECONDS="600",
    ):
        yield Server(f"http://127.0.0.1:{port}", port, url)


@dataclass(frozen=True)
class World:
    merchant: Merchant
    secret: str
    source: Account
    destination: Account

    def body(self) -> dict[str, Any]:
        return {
            "source_account": self.source.public_id,
            "destination_account": self.destination.public_id,
            "amount": 100,
            "currency": "USD",
        }

    def balances(self) -> list[int]:
        return [
            Account.objects.get(pk=account.pk).balance
            for account in (self.source, self.destination)
        ]


@pytest.fixture
def world() -> World:
    """A merchant, its key and two accounts, committed for the server to see."""
    merchant = merchant_create(name="Crash")
    _, secret = api_key_create(merchant=merchant)
    source = account_create(merchant=merchant, currency="USD")
    adjustment_post(account=source, amount=1_000, reason="funding")
    destination = account_create(merchant=merchant, currency="USD")
    return World(merchant, secret, source, destination)


def _post(server: Server, world: World, key: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/transfers",
        json=world.body(),
        headers={"Authorization": f"Bearer {world.secret}", "Idempotency-Key": key},
        timeout=WAIT_SECONDS,
        trust_env=False,
    )


def _in_background(server: Server, world: World, key: str) -> Callable[[], Any]:
    """The transfer sent from a thread; returns how to wait for its response (or its
    transport error)."""
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(_post(server, world, key))
        except httpx.TransportError as error:
            outcome.append(error)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()

    def result() -> Any:
        thread.join(WAIT_SECONDS)
        (answer,) = outcome
        return answer

    return result


@contextlib.contextmanager
def _source_locked(server: Server, world: World) -> Iterator[psycopg.Connection[Any]]:
    """The source account's row locked by a transaction of this test's own until the block
    ends; yields a second connection, in autocommit, to watch the server's sessions with
    (each statement a transaction of its own: a fresh view of pg_stat_activity)."""
    with (
        psycopg.connect(server.database) as blocker,
        psycopg.connect(server.database, autocommit=True) as observer,
    ):
        blocker.execute(
            f"SELECT 1 FROM {Account._meta.db_table} WHERE id = %s FOR UPDATE",
            [world.source.pk],
        )
        yield observer
        blocker.rollback()


def _until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"no {what} within {WAIT_SECONDS} s")


def _blocked_holder(observer: psycopg.Connection[Any], world: World, key: str) -> tuple[int, int]:
    """Once the request that claimed `key` waits for the row lock: its session's pid, and
    the port its worker's connection to PostgreSQL uses."""
    query = (
        f"SELECT k.holder_pid, a.client_port FROM {IdempotencyKey._meta.db_table} k"
        " JOIN pg_stat_activity a ON a.pid = k.holder_pid"
        " WHERE k.merchant_id = %s AND k.key = %s AND k.state = %s"
        " AND a.wait_event_type = 'Lock'"
    )
    params = [world.merchant.pk, key, IdempotencyKeyState.IN_FLIGHT]
    return _until("holder waiting for the lock", lambda: observer.execute(query, params).fetchone())


def _ended(observer: psycopg.Connection[Any], pid: int) -> bool:
    return (
        observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is None
    )


def _process_with_local_port(pids: list[int], port: int) -> int:
    """Which of `pids` owns the TCP socket bound to local port `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return pid
    pytest.fail(f"no process of {pids} has a socket on port {port}")


def test_a_key_whose_holder_is_alive_answers_409(server: Server, world: World) -> None:
    key = str(uuid.uuid4())
    with _source_locked(server, world) as observer:
        first = _in_background(server, world, key)
        _blocked_holder(observer, world, key)
        # The other worker answers: the key is in flight and its holder's session lives.
        in_use = _post(server, world, key)
        assert in_use.status_code == 409
        assert in_use.json()["error"]["code"] == "idempotency_key_in_use"
    # The lock released, the holder finished; its answer is the key's.
    answer = first()
    assert answer.status_code == 201
    replayed = _post(server, world, key)
    assert (replayed.status_code, replayed.content) == (201, answer.content)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert Transfer.objects.filter(merchant=world.merchant).count() == 1
    assert world.balances() == [900, 100]


def test_a_key_whose_holder_was_killed_is_taken_over_at_once(server: Server, world: World) -> None:
    key = str(uuid.uuid4())
    with _source_locked(server, world) as observer:
        first = _in_background(server, world, key)
        holder_pid, client_port = _blocked_holder(observer, world, key)
        worker = _process_with_local_port(uwsgi_pids(server.port), client_port)
        os.kill(worker, signal.SIGKILL)
        # The session was waiting for a row lock, not for its client: PostgreSQL notices the
        # dead client within client_connection_check_interval and ends it.
        _until("end of the killed worker's session", lambda: _ended(observer, holder_pid))
    lost = first()
    assert isinstance(lost, httpx.TransportError)  # its worker died before answering
    row = IdempotencyKey.objects.get(merchant=world.merchant, key=key)
    assert (row.state, row.holder_pid) == (IdempotencyKeyState.IN_FLIGHT, holder_pid)
    assert world.balances() == [1_000, 0]  # the killed request moved nothing

    retried = _post(server, world, key)

    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert IdempotencyKey.objects.get(pk=row.pk).state == IdempotencyKeyState.COMPLETED
    assert Transfer.objects.filter(merchant=world.merchant).count() == 1
    assert world.balances() == [900, 100]
