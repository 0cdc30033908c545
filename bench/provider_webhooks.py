"""The inbound provider webhook endpoint under load, through the real server (bin/serve):
closed-loop clients POST validly signed events (a share of them duplicates of events
already accepted), the server verifies, stores and sends each new event's task to the
broker. No worker runs, so that the tasks wait in the broker to be counted: every distinct
event must be stored once and have exactly one task, a duplicate none. The bench's events
(ids `evt_bench…` / pspReference `BENCH…`) and their tasks are removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.db import connection
from django.db.models import QuerySet

from bench.api import (
    BenchError,
    EndpointStats,
    RawHttpConnection,
    ServerOptions,
    cpu_line,
    cpu_sample,
    server_running,
)
from bench.payments import process_env, queued_tasks
from bench.webhook_requests import adyen_notification_body, stripe_event_body, stripe_signature
from payments.models import ProviderWebhook, ProviderWebhookStatus

BAR_PER_SECOND = 500
BAR_P99_MS = 50.0
WARMUP_SECONDS = 1.0
EVENT_PREFIX = {"stripe": "evt_bench", "adyen": "BENCH"}
EXPECTED = {"200"}


@dataclass(frozen=True)
class WebhookBenchOptions:
    provider: str
    clients: int
    seconds: float
    duplicates: float  # the share of requests that repeat an event already accepted
    broker: str
    server: ServerOptions


@dataclass
class _Load:
    """What the clients sent: the events accepted (by id), and the timed requests' stats."""

    run: str  # this run's mark in the event ids
    stats: EndpointStats
    distinct: dict[str, tuple[bytes, dict[str, str]]]
    duplicates_sent: int = 0
    warmup_requests: int = 0
    elapsed: float = 0.0


def _new_event(provider: str, run: str, number: int) -> tuple[str, bytes, dict[str, str]]:
    """A new event: (its id, its body, its headers), signed now."""
    if provider == "adyen":
        psp = f"{EVENT_PREFIX['adyen']}{run}{number:09d}"
        body = adyen_notification_body(psp_reference=psp, attempt=f"att_bench{number}")
        return f"{psp}:AUTHORISATION:true", body, {}
    event_id = f"{EVENT_PREFIX['stripe']}{run}_{number}"
    body = stripe_event_body(
        reference=f"pi_bench{run}_{number}", attempt=f"att_bench{number}", event_id=event_id
    )
    return event_id, body, stripe_signature(body)


async def _client(
    send: RawHttpConnection,
    options: WebhookBenchOptions,
    load: _Load,
    timed_from: float,
    stop_at: float,
    counter: list[int],
) -> None:
    rng = random.Random()  # noqa: S311 - workload, not crypto
    path = f"/webhooks/providers/{options.provider}/"
    clock = time.perf_counter
    while clock() < stop_at:
        duplicate = bool(load.distinct) and rng.random() < options.duplicates
        if duplicate:
            event_id = rng.choice(list(load.distinct))
            body, headers = load.distinct[event_id]
        else:
            counter[0] += 1
            event_id, body, headers = _new_event(options.provider, load.run, counter[0])
        began = clock()
        try:
            status, payload = await send.request("POST", path, body, headers)
        except Exception as error:  # counted and sampled; the loop goes on
            load.stats.record(
                clock() - began, f"error:{type(error).__name__}", EXPECTED, str(error)
            )
            continue
        outcome = str(status)
        if began >= timed_from:
            load.stats.record(clock() - began, outcome, EXPECTED, payload.decode(errors="replace"))
        else:
            load.warmup_requests += 1
        if outcome != "200":
            continue
        if duplicate:
            load.duplicates_sent += 1
        else:
            load.distinct[event_id] = (body, headers)


async def _load(base_url: str, options: WebhookBenchOptions, run: str) -> _Load:
    load = _Load(run=run, stats=EndpointStats(), distinct={})
    senders = [RawHttpConnection(base_url, {}) for _ in range(options.clients)]
    start = time.perf_counter()
    timed_from = start + WARMUP_SECONDS
    stop_at = timed_from + options.seconds
    counter = [0]
    try:
        await asyncio.gather(
            *(_client(s, options, load, timed_from, stop_at, counter) for s in senders)
        )
    finally:
        for sender in senders:
            sender.close()
    load.elapsed = max(time.perf_counter() - timed_from, 1e-9)
    return load


def _bench_rows(run: str, provider: str) -> QuerySet[ProviderWebhook]:
    return ProviderWebhook.objects.filter(
        provider=provider, event_id__startswith=f"{EVENT_PREFIX[provider]}{run}"
    )


def stored_once_violations(*, load: _Load, provider: str, tasks: int) -> list[str]:
    """Every distinct event accepted is stored once and untouched (received, no try: no
    worker ran), and the broker holds one task per stored event: no duplicate was
    enqueued (so none is processed again)."""
    rows = _bench_rows(load.run, provider)
    stored = dict(rows.values_list("event_id", "status"))
    violations = []
    missing = set(load.distinct) - set(stored)
    if missing:
        violations.append(f"{len(missing)} accepted events not stored, e.g. {sorted(missing)[:3]}")
    extra = set(stored) - set(load.distinct)
    if extra:
        violations.append(f"{len(extra)} events stored that were never accepted")
    touched = rows.exclude(status=ProviderWebhookStatus.RECEIVED).count()
    if touched:
        violations.append(f"{touched} stored events changed though no worker ran")
    if tasks != len(stored):
        violations.append(
            f"the broker holds {tasks} tasks for {len(stored)} stored events: "
            "a duplicate was enqueued, or a new event was not"
        )
    return violations


def _clean_up(run: str, provider: str, broker: str) -> None:
    """The bench's rows and the tasks it left in its own broker database."""
    _bench_rows(run, provider).delete()
    client = redis.Redis.from_url(broker)
    try:
        client.delete("celery")
    finally:
        client.close()


def bench_run(options: WebhookBenchOptions, write: Callable[[str], None]) -> list[str]:
    waiting = queued_tasks(options.broker)
    if waiting:
        raise BenchError(
            f"the broker {options.broker} already holds {waiting} tasks: give the bench a "
            "Redis database of its own (--broker), where no worker runs"
        )
    run = secrets.token_hex(4)
    write(
        f"bench_provider_webhooks on {connection.settings_dict['NAME']}: {options.provider}, "
        f"{options.clients} clients (closed loop), {options.seconds:g} s after "
        f"{WARMUP_SECONDS:g} s of warm-up, {options.duplicates:.0%} duplicates; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    env = process_env(broker=options.broker, simulator_url="")
    server_options = ServerOptions(
        workers=options.server.workers,
        threads=options.server.threads,
        rate_limit=options.server.rate_limit,
        extra_env=(*env.items(), *options.server.extra_env),
    )
    try:
        with contextlib.ExitStack() as stack:
            server, ready = stack.enter_context(
                server_running(server_options, ready_path="/health/live", headers={})
            )
            if ready.status_code != 200:
                raise BenchError(f"the server answered {ready.status_code}: {ready.text[:300]}")
            processes, threads = server.log.shape()
            write(f"server: uWSGI via bin/serve on {server.url}, {processes} × {threads} threads")
            before = cpu_sample(server)
            load = asyncio.run(_load(server.url, options, run))
            after = cpu_sample(server)
            problems = server.log.problems()
        tasks = queued_tasks(options.broker)
        stats = load.stats
        per_second = stats.statuses.get("200", 0) / load.elapsed
        write(
            f"accepted  POST /webhooks/providers/{options.provider}/: {per_second:7.1f} req/s  "
            f"p50 {stats.percentile_ms(0.5):6.2f} ms  p99 {stats.percentile_ms(0.99):6.2f} ms  "
            f"n {stats.count}  " + "  ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
        )
        write(
            f"events: {len(load.distinct)} distinct stored, {load.duplicates_sent} duplicates "
            f"answered; {tasks} tasks in the broker"
        )
        write(cpu_line(before, after, stats.count + load.warmup_requests))
        met = per_second >= BAR_PER_SECOND and stats.percentile_ms(0.99) < BAR_P99_MS
        write(
            f"bar: ≥ {BAR_PER_SECOND}/s with p99 < {BAR_P99_MS:g} ms: {'met' if met else 'NOT met'}"
        )
        violations = stored_once_violations(load=load, provider=options.provider, tasks=tasks)
        unexpected = {k: v for k, v in stats.statuses.items() if k not in EXPECTED}
        if unexpected:
            violations.append(
                f"unexpected outcomes {unexpected}; e.g. " + " | ".join(stats.samples)
            )
        violations += [f"server log: {line}" for line in problems[:5]]
        write(f"stored once: {'ok' if not violations else 'FAILED'}")
        return violations
    finally:
        _clean_up(run, options.provider, options.broker)
