"""Outbound webhooks end to end: events committed by real transfers, relayed and delivered
by a real Celery worker to a local receiver, which verifies every request with the
`standardwebhooks` package (a dev dependency). Used by `manage.py bench_webhooks`
(docs/benchmarks.md).

The receiver is a forked process (a threading http.server), so it competes with the
worker for the CPU as a merchant's server would not; commit and receipt times are both
this machine's `time.time()`."""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path

import kombu.pools
from celery import current_app
from django.conf import settings
from django.db import connection

from accounts.services import account_create, merchant_create
from bench.api import BenchError
from bench.payments import (
    WorkerOptions,
    _free_port,
    cpu_by_group,
    cpu_split_line,
    process_env,
    worker_running,
)
from ledger.services import adjustment_post
from payments.services import transfer_create
from webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from webhooks.relay import RELAY_TASK
from webhooks.services import webhook_endpoint_create

CURRENCY = "USD"


@dataclass(frozen=True)
class WebhooksBenchOptions:
    broker: str
    rate: float
    seconds: float
    endpoints: int
    drain: float
    worker: WorkerOptions
    workers: int = 1


@dataclass(frozen=True)
class Arrival:
    path: str
    webhook_id: str
    transfer: str
    at: float
    verified: bool


def _receive(port: int, secrets: dict[str, str], control: Connection) -> None:
    """The receiver process: answers 200 to every POST, verifies it, and sends back what
    arrived when told to stop."""
    from standardwebhooks import Webhook, WebhookVerificationError

    verifiers = {path: Webhook(secret) for path, secret in secrets.items()}
    arrivals: list[tuple[str, str, str, float, bool]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            at = time.time()
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = True
            try:
                payload = verifiers[self.path].verify(body, headers)
            except (KeyError, WebhookVerificationError):
                verified, payload = False, json.loads(body)
            with lock:
                arrivals.append(
                    (
                        self.path,
                        headers.get("webhook-id", ""),
                        payload["data"]["object"].get("id", ""),
                        at,
                        verified,
                    )
                )
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    control.send("ready")
    control.recv()  # stop
    server.shutdown()
    with lock:
        control.send(list(arrivals))


@contextlib.contextmanager
def receiver_running(port: int, secrets: dict[str, str]) -> Iterator[Callable[[], list[Arrival]]]:
    """The receiver; yields a function that stops it and returns what arrived."""
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=_receive, args=(port, secrets, child), daemon=True
    )
    process.start()
    if not parent.poll(30) or parent.recv() != "ready":
        process.kill()
        raise BenchError("the receiver did not start")
    stopped: list[Arrival] = []

    def stop() -> list[Arrival]:
        if not stopped and process.is_alive():
            parent.send("stop")
            stopped.extend(Arrival(*row) for row in parent.recv())
        return stopped

    try:
        yield stop
    finally:
        stop()
        process.join(10)
        if process.is_alive():
            process.kill()


@contextlib.contextmanager
def tasks_to(broker: str) -> Iterator[None]:
    """Tasks this process sends go to `broker`, not run eagerly."""
    app = current_app
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url=broker)
    _broker_connections_drop()
    try:
        yield
    finally:
        app.conf.update(saved)
        _broker_connections_drop()


def _broker_connections_drop() -> None:
    """Forget pooled connections: the next task sent connects to the broker now set."""
    kombu.pools.reset()
    current_app._pool = None  # type: ignore[attr-defined]
    current_app.amqp._producer_pool = None  # type: ignore[attr-defined]


@contextlib.contextmanager
def beat_running(interval: float) -> Iterator[None]:
    """What Celery beat does: the relay task every `interval` seconds."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):
                current_app.tasks[RELAY_TASK].apply_async()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def bench_run(options: WebhooksBenchOptions, write: Callable[[str], None]) -> list[str]:
    """Run it; print the figures; return the violations (none when every event reached
    every endpoint once, verified)."""
    with tasks_to(options.broker):  # the setup's own events too: none is relayed here
        committed, arrivals, load_seconds = _run(options, write)
    connection.close()
    return _report(options, committed, arrivals, load_seconds, write)


def _run(
    options: WebhooksBenchOptions, write: Callable[[str], None]
) -> tuple[dict[str, float], list[Arrival], float]:
    merchant = merchant_create(name=f"bench webhooks {time.time():.0f}")
    source = account_create(merchant=merchant, currency=CURRENCY)
    destination = account_create(merchant=merchant, currency=CURRENCY)
    adjustment_post(account=source, amount=10**12, reason="bench_webhooks funding")
    port = _free_port()
    secrets = {}
    for number in range(options.endpoints):
        path = f"/endpoint-{number}"
        _, secrets[path] = webhook_endpoint_create(
            merchant=merchant, url=f"http://127.0.0.1:{port}{path}", enabled_events=["*"]
        )
    env = process_env(broker=options.broker, simulator_url="")
    env["WEBHOOKS_ALLOW_PRIVATE_URLS"] = "true"
    committed: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench_webhooks-") as directory,
        receiver_running(port, secrets) as arrivals_of,
        contextlib.ExitStack() as workers,
        beat_running(settings.WEBHOOK_RELAY_INTERVAL_SECONDS),
    ):
        groups = {"bench and receiver": os.getpgid(0)}
        for number in range(options.workers):
            logs = Path(directory) / f"worker-{number}"
            logs.mkdir()
            worker = workers.enter_context(worker_running(options.worker, env, logs))
            groups[f"worker {number + 1}"] = worker.process.pid
        database = str(connection.settings_dict["NAME"])
        cpu_before = cpu_by_group(groups, database)
        total = int(options.rate * options.seconds)
        write(
            f"committing {total} transfers at {options.rate:g}/s, {options.endpoints} "
            f"endpoints: {total * options.endpoints} deliveries expected"
        )
        started = time.monotonic()
        for number in range(total):
            pause = started + number / options.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            transfer = transfer_create(
                merchant=merchant, source=source, destination=destination, amount=1
            )
            committed[transfer.public_id] = time.time()
        load_seconds = time.monotonic() - started
        deadline = time.monotonic() + options.drain
        pending = WebhookDelivery.objects.filter(merchant=merchant).exclude(
            status=WebhookDeliveryStatus.SUCCEEDED
        )
        while time.monotonic() < deadline:
            if (
                WebhookDelivery.objects.filter(merchant=merchant).count()
                >= total * options.endpoints
                and not pending.exists()
            ):
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        cpu_after = cpu_by_group(groups, database)
        deliveries = len(committed) * options.endpoints
        write(
            cpu_split_line(cpu_before, cpu_after, wall, deliveries).replace(
                "a payment", "a delivery"
            )
        )
        return committed, arrivals_of(), load_seconds


def _report(
    options: WebhooksBenchOptions,
    committed: dict[str, float],
    arrivals: list[Arrival],
    load_seconds: float,
    write: Callable[[str], None],
) -> list[str]:
    ours = [arrival for arrival in arrivals if arrival.transfer in committed]
    latencies = [arrival.at - committed[arrival.transfer] for arrival in ours]
    first = min(committed.values(), default=0.0)
    last = max((arrival.at for arrival in ours), default=first)
    span = last - first
    write(
        f"transfers committed: {len(committed)} in {load_seconds:.1f} s "
        f"({len(committed) / load_seconds:.1f}/s)"
    )
    write(
        f"deliveries received: {len(ours)} in {span:.1f} s from the first commit: "
        f"{len(ours) / span if span > 0 else 0:.1f} deliveries/s"
    )
    write(
        f"commit to receipt: p50 {_percentile(latencies, 0.5) * 1000:.0f} ms  "
        f"p99 {_percentile(latencies, 0.99) * 1000:.0f} ms  "
        f"max {max(latencies, default=math.nan) * 1000:.0f} ms"
    )
    violations = []
    received = Counter((arrival.path, arrival.transfer) for arrival in ours)
    for path in sorted({f"/endpoint-{n}" for n in range(options.endpoints)}):
        for transfer in committed:
            count = received.get((path, transfer), 0)
            if count != 1:
                violations.append(f"{transfer} reached {path} {count} times")
    violations += [
        f"{arrival.webhook_id} to {arrival.path} failed verification"
        for arrival in ours
        if not arrival.verified
    ]
    if not violations:
        write("every event reached every endpoint exactly once, verified: ok")
    return violations[:50] + ([f"… {len(violations) - 50} more"] if len(violations) > 50 else [])
