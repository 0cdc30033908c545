"""HTTP load on the public API through the real server: transfers and balance reads from
concurrent closed-loop clients (each reconnecting when the server closes the connection,
as bin/serve does after every response), timed per request, and the money counted afterwards.

Used by `manage.py bench_api` (see docs/benchmarks.md). The command's process does the
setup (a bench merchant, its API key, the funding — operators fund, the API cannot) and
the checks through the ORM; the accounts and all the load go through HTTP. Unless a URL is
given, the server is the production one, bin/serve (uWSGI with uwsgi.ini, running
`config.wsgi:application`), started here on a free loopback port against the command's own
database, and stopped again at the end.

The load generator is wrk (the C HTTP benchmarking tool) when it is installed: one wrk
process per endpoint, driven by a generated Lua script. On the 2-core machine it costs
about 0.13 ms of CPU a request, most of it the kernel's loopback TCP, where the Python
clients take 0.4 ms (`raw`, on asyncio streams) and more (`httpx`): CPU that the server,
on the same machine, needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.api_keys import api_key_create
from accounts.models import Account, Merchant
from accounts.services import merchant_create
from bench.transfers import CURRENCY, FUNDING, MAX_AMOUNT, MIN_AMOUNT, invariant_breaks
from ledger.models import LedgerTransaction, LedgerTransactionKind
from ledger.services import adjustment_post
from payments.models import Transfer, TransferStatus

# The workload is bench_transfers': USD accounts funded with 10^12, transfers of 1–100.

TRANSFERS, BALANCES = "transfers", "balances"
ENDPOINTS = {
    TRANSFERS: "POST /api/v1/transfers",
    BALANCES: "GET /api/v1/accounts/{id}/balance",
}
# What a correct server answers here: a transfer succeeds (or, never with this funding, is
# declined and stored as failed); a balance is read. Anything else breaks the run.
EXPECTED_STATUSES = {TRANSFERS: {"201", "402"}, BALANCES: {"200"}}
# The share of transfers among the requests: `mixed` is the bar's 300 : 1,500.
MIXES = {"transfers": 1.0, "balances": 0.0, "mixed": 1 / 6}
# The bar on the 2-core machine, reported (not enforced) after each run.
BAR_PER_SECOND = {TRANSFERS: 300, BALANCES: 1500}
BAR_P99_MS = 50.0

# The load generators: httpx.AsyncClient, RawHttpConnection, or wrk (the C tool).
HTTPX, RAW, WRK = "httpx", "raw", "wrk"
CLIENTS = (HTTPX, RAW, WRK)
WRK_MISSING = "wrk is not installed (Debian/Ubuntu: apt-get install wrk); or use --client raw"

DEFAULT_RATE_LIMIT = "1000000/second"
_READY_TIMEOUT = 60.0  # seconds the server may take to answer its first request
_STOP_TIMEOUT = 15.0  # seconds uWSGI may take to stop its workers and exit, after SIGTERM
_REQUEST_TIMEOUT = 30.0
_SAMPLES_KEPT = 3
# The server's log: uWSGI's own lines, and Django's records, JSON or LOG_FORMAT=text
# (`<date> <time> <LEVEL> <logger> [<request id>] <message>`, config.settings.LOGGING).
# Lines that mean something went wrong: a traceback, a request killed after SERVER_TIMEOUT
# (HARAKIRI), a worker that died (DAMN !), a record at ERROR or above; and 5xx answers.
_LOG_PROBLEMS = ("Traceback", "HARAKIRI", "DAMN !", '"level": "ERROR"', '"level": "CRITICAL"')
_TEXT_RECORD = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ "
_TEXT_PROBLEM = re.compile(_TEXT_RECORD + r"(ERROR|CRITICAL) ")
# The access log (core.logging.AccessLogMiddleware): one record a request on this logger,
# whose text message is `<METHOD> <path> <status>`.
_ACCESS_LOGGER = "moneta.access"
_TEXT_ACCESS_LOG = re.compile(_TEXT_RECORD + r"\w+ moneta\.access \[.*\] \S+ .+ (\d{3})$")
# uWSGI's master logs `spawned uWSGI worker N (pid: P, cores: T)` for each of its
# processes (T threads each) at start, and `Respawned uWSGI worker N (new pid: P)` for
# each one it replaced later: recycled (SERVER_MAX_REQUESTS), killed (HARAKIRI), crashed.
_WORKER_SPAWNED = re.compile(r"\bspawned uWSGI worker \d+ \(pid: \d+, cores: (\d+)\)")
_WORKER_RESPAWNED = re.compile(r"\bRespawned uWSGI worker \d+ ")


class BenchError(Exception):
    """The bench could not run: the server did not start, or refused the setup."""


# --- measuring ----------------------------------------------------------------------------


@dataclass
class EndpointStats:
    """Every request to one endpoint: its latency (seconds) and its outcome, the HTTP
    status as text or `error:<exception>` when no response came back. Or, from wrk, which
    keeps no single latency: the count it reports, and its percentiles in milliseconds by
    fraction (`reported_ms`), in place of the latencies."""

    latencies: array = field(default_factory=lambda: array("d"))
    statuses: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    reported_count: int | None = None
    reported_ms: dict[float, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.latencies) if self.reported_count is None else self.reported_count

    def record(self, seconds: float, outcome: str, expected: set[str], body: str = "") -> None:
        self.latencies.append(seconds)
        self.statuses[outcome] += 1
        if outcome not in expected and len(self.samples) < _SAMPLES_KEPT:
            self.samples.append(f"{outcome} {body[:300]}".strip())

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds (or the one reported,
        NaN when that one was not)."""
        if self.reported_count is not None:
            return self.reported_ms.get(fraction, math.nan)
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] * 1000

    def unexpected(self, endpoint: str) -> Counter[str]:
        return Counter(
            {k: v for k, v in self.statuses.items() if k not in EXPECTED_STATUSES[endpoint]}
        )


@dataclass
class LoadResult:
    """One closed-loop phase: `elapsed` runs from the common start to the last response."""

    mix: str
    clients: int
    elapsed: float
    stats: dict[str, EndpointStats]

    def per_second(self, endpoint: str) -> float:
        stats = self.stats.get(endpoint)
        return stats.count / self.elapsed if stats and self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class LoadPlan:
    base_url: str
    secret: str
    account_ids: tuple[str, ...]  # public ids
    mix: str
    clients: int
    seconds: float
    warmup: float
    client: str = HTTPX  # or RAW: RawHttpConnection, or WRK


# One request: (method, path, JSON body or None, extra headers) -> (status, body).
Send = Callable[[str, str, bytes | None, dict[str, str]], Awaitable[tuple[int, bytes]]]


class RawHttpConnection:
    """One HTTP/1.1 keep-alive connection that writes each request as prepared bytes and
    reads the response by its Content-Length (or its chunks, or to the end of the
    connection). A load generator whose own CPU is small next to the server's: httpx
    costs about 3 ms of CPU a request on the 2-core machine, this about 0.4 ms (see
    docs/benchmarks.md). It reconnects after `Connection: close` (uWSGI's, after
    every response: uwsgi.ini) or a connection the server closed while it was idle."""

    def __init__(self, base_url: str, headers: dict[str, str]):
        url = httpx.URL(base_url)
        if url.scheme != "http" or not url.host:
            raise BenchError(f"--client raw speaks plain http://host:port only, not {base_url}")
        self._host, self._port = url.host, url.port or 80
        self._prefix = url.path.rstrip("/")
        fixed = {"Host": f"{url.host}:{self._port}", **headers}
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        async with asyncio.timeout(_REQUEST_TIMEOUT):
            return await self._exchange(method, path, body, headers)

    async def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None or self._reader.at_eof():
            self.close()
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        parts = [f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1"), self._headers]
        parts += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
        if body is not None:
            parts.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        parts += [b"\r\n", body or b""]
        try:
            writer.write(b"".join(parts))
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head[:-4].split(b"\r\n")
            status = int(status_line.split(b" ", 2)[1])
            fields = {}
            for line in lines:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip().lower()
            if b"content-length" in fields:
                payload = await reader.readexactly(int(fields[b"content-length"]))
            elif fields.get(b"transfer-encoding") == b"chunked":
                payload = await self._read_chunks(reader)
            else:  # delimited by the end of the connection
                payload = await reader.read()
                fields[b"connection"] = b"close"
        except BaseException:
            self.close()  # a half-read response leaves the connection unusable
            raise
        if fields.get(b"connection") == b"close":
            self.close()
        return status, payload

    @staticmethod
    async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return b"".join(chunks)
            chunks.append((await reader.readexactly(size + 2))[:-2])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _client_loop(
    send: Send,
    plan: LoadPlan,
    stats: dict[str, EndpointStats],
    stop_at: float,
) -> float:
    """One closed-loop client: a request, its response, the next request, until
    `stop_at` (perf_counter); the request under way at the deadline is awaited. Returns
    when its last response came back."""
    rng = random.Random()  # noqa: S311 - workload, not crypto; seeded from urandom
    share = MIXES[plan.mix]
    clock = time.perf_counter
    finished = clock()
    while clock() < stop_at:
        endpoint = TRANSFERS if share and rng.random() < share else BALANCES
        began = clock()
        try:
            if endpoint == TRANSFERS:
                source, destination = rng.sample(plan.account_ids, 2)
                amount = rng.randint(MIN_AMOUNT, MAX_AMOUNT)
                body = (
                    f'{{"source_account": "{source}", "destination_account": '
                    f'"{destination}", "amount": {amount}, "currency": "{CURRENCY}"}}'
                )
                status, payload = await send(
                    "POST",
                    "/api/v1/transfers",
                    body.encode(),
                    {"Idempotency-Key": str(uuid.uuid4())},
                )
            else:
                account = rng.choice(plan.account_ids)
                status, payload = await send("GET", f"/api/v1/accounts/{account}/balance", None, {})
        except Exception as error:  # counted, sampled, and the loop goes on
            finished = clock()
            stats[endpoint].record(
                finished - began, f"error:{type(error).__name__}", set(), str(error)
            )
            continue
        finished = clock()
        outcome = str(status)
        expected = EXPECTED_STATUSES[endpoint]
        stats[endpoint].record(
            finished - began,
            outcome,
            expected,
            "" if outcome in expected else payload.decode(errors="replace"),
        )
    return finished


def _endpoints(mix: str) -> list[str]:
    share = MIXES[mix]
    return [name for name, used in ((TRANSFERS, share > 0), (BALANCES, share < 1)) if used]


async def _phase(senders: Sequence[Send], plan: LoadPlan, seconds: float) -> LoadResult:
    stats = {endpoint: EndpointStats() for endpoint in _endpoints(plan.mix)}
    started = time.perf_counter()
    finished = await asyncio.gather(
        *(_client_loop(send, plan, stats, started + seconds) for send in senders)
    )
    return LoadResult(
        mix=plan.mix,
        clients=plan.clients,
        elapsed=max(max(finished, default=started) - started, 0.0),
        stats=stats,
    )


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far: by this process and its children waited for (wrk), by each
    of the server's processes (when it is ours; by pid), and the busy and total jiffies of
    the whole machine."""

    at: float
    own: float
    server: dict[int, float] | None
    machine_busy: int
    machine_total: int


def _machine_jiffies() -> tuple[int, int]:
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, 0 when it is gone (or not on Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_sample(server: RunningServer | None) -> CpuSample:
    usage = os.times()
    busy, total = _machine_jiffies()
    return CpuSample(
        at=time.monotonic(),
        # wrk runs as a child: its CPU is the load generator's too.
        own=usage.user + usage.system + usage.children_user + usage.children_system,
        server=server.cpu_by_pid() if server is not None else None,
        machine_busy=busy,
        machine_total=total,
    )


def cpu_line(before: CpuSample, after: CpuSample, requests: int) -> str:
    """Shares of one core over the run, and per request. A server worker that exited
    during the run (recycled) takes its CPU time with it: the server's share is then low."""
    wall = max(after.at - before.at, 1e-9)

    def share(seconds: float, per_request: bool = True) -> str:
        cost = f" = {1000 * seconds / requests:.2f} ms a request" if requests else ""
        return f"{100 * seconds / wall:.0f}%{cost if per_request else ''}"

    own = after.own - before.own
    parts = [f"load generator {share(own)}"]
    used = own
    if before.server is not None and after.server is not None:
        by_pid = {
            pid: seconds - before.server.get(pid, 0.0) for pid, seconds in after.server.items()
        }
        server = sum(by_pid.values())
        used += server
        workers = sorted(list(by_pid.values())[1:], reverse=True)  # the master comes first
        split = ", ".join(share(seconds, per_request=False) for seconds in workers)
        parts.append(f"server {share(server)} (by worker: {split})")
    total = after.machine_total - before.machine_total
    if total > 0:
        cpus = os.cpu_count() or 1
        busy = (after.machine_busy - before.machine_busy) / total * cpus * wall
        parts.append(f"everything else (PostgreSQL, Redis, other processes) {share(busy - used)}")
        parts.append(f"whole machine {100 * busy / wall:.0f}% of {100 * cpus}%")
    return (
        "CPU during the run (100% = one core): "
        + ", ".join(parts)
        + f"; load average {os.getloadavg()[0]:.1f} at the end"
    )


@dataclass
class LoadRun:
    """The warm-up (its outcomes count for the checks, its timings do not), the timed
    phase, and CPU samples around the timed phase."""

    warmup: LoadResult | None
    run: LoadResult
    cpu_before: CpuSample
    cpu_after: CpuSample


async def _load(plan: LoadPlan, sample: Callable[[], CpuSample]) -> LoadRun:
    """Both phases over the same connections: one httpx pool of `clients` connections,
    or one raw connection per client."""
    auth = {"Authorization": f"Bearer {plan.secret}"}
    async with contextlib.AsyncExitStack() as stack:
        if plan.client == "raw":
            connections = [RawHttpConnection(plan.base_url, auth) for _ in range(plan.clients)]
            for raw in connections:
                stack.callback(raw.close)
            senders: list[Send] = [raw.request for raw in connections]
        else:
            limits = httpx.Limits(
                max_connections=plan.clients, max_keepalive_connections=plan.clients
            )
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=plan.base_url,
                    headers=auth,
                    limits=limits,
                    timeout=_REQUEST_TIMEOUT,
                    trust_env=False,
                )
            )

            async def send(
                method: str, path: str, body: bytes | None, headers: dict[str, str]
            ) -> tuple[int, bytes]:
                if body is not None:
                    headers = {**headers, "Content-Type": "application/json"}
                response = await client.request(method, path, content=body, headers=headers)
                return response.status_code, response.content

            senders = [send] * plan.clients
        warm = await _phase(senders, plan, plan.warmup) if plan.warmup > 0 else None
        before = sample()
        run = await _phase(senders, plan, plan.seconds)
        after = sample()
    return LoadRun(warmup=warm, run=run, cpu_before=before, cpu_after=after)


# --- wrk ------------------------------------------------------------------------------------

# The lines of wrk's output that the script's done() prints for `parse_wrk_output`.
_WRK_LINE = "bench_api-wrk"
# How long wrk may wait, after the deadline, for the responses still under way.
_WRK_DRAIN = _REQUEST_TIMEOUT

# One endpoint's load for one wrk process (run with -t1). $-placeholders are Lua literals.
_WRK_SCRIPT = string.Template(
    r"""-- Generated by bench_api (bench/api.py) for one wrk run.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
int getpid(void);
int kill(int pid, int signal);
]]

local run_id, prefix = $run_id, $prefix
local seconds, seed, kept = $seconds, $seed, $kept
-- Seconds between the starts of two requests of this thread; 0: each connection sends
-- its next request as soon as the last one is answered.
local interval = $interval
local expected = {$expected}
wrk.headers["Authorization"] = "Bearer " .. $secret

local timespec = ffi.new("bench_timespec")
local function now()  -- in seconds, finer than os.time()'s whole ones
  ffi.C.clock_gettime(1, timespec)  -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

-- In the main state: the threads, for done() to read their counts.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

-- In each thread's state, read by done() through thread:get().
statuses, samples, in_flight, started, finished = {}, {}, 0, 0, 0
local counter, deadline, stopping = 0, 0, false

function init(args)
  math.randomseed(seed + id)
  started = now()
  finished, deadline = started, started + seconds
end

$request_code
-- wrk stops at -d with requests under way: a transfer cut off there would be committed
-- and never counted, and break the money check. So past the deadline no request starts,
-- and once the last one is answered, wrk stops: this thread's loop, and (SIGINT) its main
-- thread's wait for -d, which would otherwise idle on, and dilute the CPU shares. Run
-- with -t1: with more threads, the first one done would stop the others.
local function stop_when_answered()
  if in_flight == 0 and not stopping then
    stopping = true
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end

-- Called before each request, but for one resent on a new connection after an error,
-- which takes the place of the lost one: in_flight stays exact.
local paced = 0  -- requests scheduled so far, when paced
function delay()
  if interval > 0 then
    local slot = started + paced * interval
    if slot < deadline then
      paced = paced + 1
      in_flight = in_flight + 1
      return math.max(0, (slot - now()) * 1000)
    end
  elseif now() < deadline then
    in_flight = in_flight + 1
    return 0
  end
  stop_when_answered()
  return 3600000  -- never, before wrk stops
end

function response(status, headers, body)
  finished = now()
  in_flight = in_flight - 1
  local outcome = tostring(status)
  statuses[outcome] = (statuses[outcome] or 0) + 1
  if not expected[outcome] and #samples < kept then
    samples[#samples + 1] = outcome .. " " .. body:sub(1, 300)
  end
  if finished >= deadline then stop_when_answered() end
end

local function emit(...)
  io.write($line, " ", table.concat({...}, " "), "\n")
end

function done(summary, latency, requests)
  local outcomes, kept_samples, unanswered = {}, {}, 0
  local first, last = math.huge, 0
  for _, thread in ipairs(threads) do
    for outcome, count in pairs(thread:get("statuses")) do
      outcomes[outcome] = (outcomes[outcome] or 0) + count
    end
    for _, sample in ipairs(thread:get("samples")) do
      if #kept_samples < kept then kept_samples[#kept_samples + 1] = sample end
    end
    unanswered = unanswered + thread:get("in_flight")
    first = math.min(first, thread:get("started"))
    last = math.max(last, thread:get("finished"))
  end
  -- Socket errors; "status" (4xx, 5xx) is in the statuses already.
  for _, kind in ipairs({"connect", "read", "write", "timeout"}) do
    if summary.errors[kind] > 0 then outcomes["error:" .. kind] = summary.errors[kind] end
  end
  if unanswered > 0 then outcomes["error:unanswered"] = unanswered end
  emit("requests", string.format("%d", summary.requests))
  emit("duration_us", string.format("%d", math.max(last - first, 0) * 1e6))
  for _, percentile in ipairs({50, 99}) do
    emit("latency_us", percentile, string.format("%d", latency:percentile(percentile)))
  end
  for outcome, count in pairs(outcomes) do emit("outcome", outcome, string.format("%d", count)) end
  for _, sample in ipairs(kept_samples) do emit("sample", (sample:gsub("%s+", " "))) end
end
"""
)


# The request() of bench_api's wrk scripts; $-placeholders are Lua literals. `counter` and
# `id` (the thread's) are the frame's.
_WRK_TRANSFERS_REQUEST = string.Template(
    r"""local endpoint, ids = $endpoint, {$ids}
local min_amount, max_amount, currency = $min_amount, $max_amount, $currency

function request()
  if endpoint == "balances" then
    return wrk.format("GET", prefix .. "/api/v1/accounts/" .. ids[math.random(#ids)] .. "/balance")
  end
  local source, destination = math.random(#ids), math.random(#ids - 1)
  if destination >= source then destination = destination + 1 end  -- never the source
  counter = counter + 1
  -- wrk.format() takes wrk.headers or the ones given, never both.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = run_id .. "-" .. id .. "-" .. counter
  local body = string.format(
    '{"source_account": "%s", "destination_account": "%s", "amount": %d, "currency": "%s"}',
    ids[source], ids[destination], math.random(min_amount, max_amount), currency)
  return wrk.format("POST", prefix .. "/api/v1/transfers", headers, body)
end
"""
)


def _lua_string(text: str) -> str:
    """A Lua string literal: printable ASCII as is, but for quotes and backslashes, every
    other byte as a decimal escape."""
    escaped = "".join(
        chr(byte) if 32 <= byte < 127 and byte not in b'"\\' else f"\\{byte:03d}"
        for byte in text.encode()
    )
    return f'"{escaped}"'


def wrk_script(
    *,
    request_code: str,
    expected: set[str],
    secret: str,
    base_url: str,
    seconds: float,
    interval: float = 0.0,
) -> str:
    """The Lua script of one wrk run: `request_code` (Lua: a request() function) in the
    frame that times the run, stops it after `seconds` once every request is answered, and
    counts the outcomes against `expected`; a new run id, so that its Idempotency-Keys
    (`run_id .. "-" .. id .. "-" .. counter`) are new. `interval`: seconds between two
    request starts (0: closed loop)."""
    return _WRK_SCRIPT.substitute(
        request_code=request_code,
        run_id=_lua_string(uuid.uuid4().hex),
        prefix=_lua_string(httpx.URL(base_url).path.rstrip("/")),
        seconds=repr(float(seconds)),
        interval=repr(float(interval)),
        seed=secrets.randbits(31),
        kept=_SAMPLES_KEPT,
        expected=", ".join(f"[{_lua_string(s)}] = true" for s in sorted(expected)),
        secret=_lua_string(secret),
        line=_lua_string(_WRK_LINE),
    )


def _wrk_script(plan: LoadPlan, endpoint: str, seconds: float) -> str:
    request_code = _WRK_TRANSFERS_REQUEST.substitute(
        endpoint=_lua_string(endpoint),
        ids=", ".join(_lua_string(public_id) for public_id in plan.account_ids),
        min_amount=MIN_AMOUNT,
        max_amount=MAX_AMOUNT,
        currency=_lua_string(CURRENCY),
    )
    return wrk_script(
        request_code=request_code,
        expected=EXPECTED_STATUSES[endpoint],
        secret=plan.secret,
        base_url=plan.base_url,
        seconds=seconds,
    )


def wrk_connections(mix: str, clients: int) -> dict[str, int]:
    """Connections per endpoint: all of them for one endpoint; for two, each its share
    (at least one)."""
    endpoints = _endpoints(mix)
    if len(endpoints) == 1:
        return {endpoints[0]: clients}
    transfers = max(1, round(clients * MIXES[mix]))
    return {TRANSFERS: transfers, BALANCES: max(1, clients - transfers)}


def parse_wrk_output(output: str) -> tuple[EndpointStats, float]:
    """The stats and the duration (seconds: first request to last response) that the
    script's done() printed; wrk's own report around them is left out."""
    stats = EndpointStats()
    seconds = None
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        if tag != _WRK_LINE:
            continue
        key, _, value = rest.partition(" ")
        if key == "requests":
            stats.reported_count = int(value)
        elif key == "duration_us":
            seconds = int(value) / 1e6
        elif key == "latency_us":
            percentile, micros = value.split()
            stats.reported_ms[int(percentile) / 100] = int(micros) / 1000
        elif key == "outcome":
            outcome, count = value.rsplit(" ", 1)
            stats.statuses[outcome] = int(count)
        elif key == "sample":
            stats.samples.append(value)
    if stats.reported_count is None or seconds is None:
        raise BenchError("wrk printed no summary")
    return stats, seconds


def wrk_command(wrk: str, connections: int, seconds: float, script: Path, url: str) -> list[str]:
    """One wrk thread with `connections`, running `script` against `url`."""
    return [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{math.ceil(seconds + _WRK_DRAIN)}s",  # the script stops it sooner
        "--timeout",
        f"{_REQUEST_TIMEOUT:g}s",
        "-s",
        str(script),
        url,
    ]


def _wrk_phase(wrk: str, plan: LoadPlan, seconds: float, directory: Path) -> LoadResult:
    """A wrk process per endpoint, all at once, each waited for: its CPU time is then
    in os.times() of this process (`cpu_sample`)."""
    processes: dict[str, subprocess.Popen[str]] = {}
    try:
        for endpoint, connections in wrk_connections(plan.mix, plan.clients).items():
            script = directory / f"{endpoint}-{uuid.uuid4().hex}.lua"
            script.write_text(_wrk_script(plan, endpoint, seconds))
            processes[endpoint] = subprocess.Popen(  # noqa: S603 - wrk, and our arguments
                wrk_command(wrk, connections, seconds, script, plan.base_url),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        outputs = {endpoint: process.communicate() for endpoint, process in processes.items()}
    finally:
        for process in processes.values():  # after an error or Ctrl-C
            if process.poll() is None:
                process.kill()
                process.wait()
    stats: dict[str, EndpointStats] = {}
    durations: list[float] = []
    for endpoint, (out, err) in outputs.items():
        try:
            stats[endpoint], duration = parse_wrk_output(out)
        except (BenchError, ValueError) as error:
            raise BenchError(
                f"wrk ({endpoint}) exited with status {processes[endpoint].returncode}: "
                f"{error}; its output:\n{(out + err)[-2000:]}"
            ) from error
        durations.append(duration)
    return LoadResult(mix=plan.mix, clients=plan.clients, elapsed=max(durations), stats=stats)


def _wrk_load(plan: LoadPlan, sample: Callable[[], CpuSample]) -> LoadRun:
    """Both phases from wrk processes, a script each, in a temporary directory."""
    wrk = shutil.which(WRK)
    if wrk is None:
        raise BenchError(WRK_MISSING)
    with tempfile.TemporaryDirectory(prefix="bench_api-wrk-") as name:
        directory = Path(name)
        warm = _wrk_phase(wrk, plan, plan.warmup, directory) if plan.warmup > 0 else None
        before = sample()
        run = _wrk_phase(wrk, plan, plan.seconds, directory)
        after = sample()
    return LoadRun(warmup=warm, run=run, cpu_before=before, cpu_after=after)


def default_client() -> str:
    """wrk when it is on PATH: its CPU is a third of the raw client's."""
    return WRK if shutil.which(WRK) else RAW


@contextlib.contextmanager
def _quiet_http_logs() -> Iterator[None]:
    """httpx logs every request at INFO: thousands of lines a second, and CPU the load
    generator needs."""
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_load(
    plan: LoadPlan, *, server: RunningServer | None = None, pin_cpu: int | None = None
) -> LoadRun:
    """Warm up, then run the timed phase, from `plan.clients` coroutines (or wrk's
    connections); pinned to one CPU when `pin_cpu` is given (wrk inherits it; the affinity
    is restored after)."""
    previous = os.sched_getaffinity(0) if pin_cpu is not None else None
    if pin_cpu is not None:
        os.sched_setaffinity(0, {pin_cpu})
    try:
        if plan.client == WRK:
            return _wrk_load(plan, lambda: cpu_sample(server))
        return asyncio.run(_load(plan, lambda: cpu_sample(server)))
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)


# --- the server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """How to start bin/serve. None means: as bin/serve decides (WEB_CONCURRENCY and
    SERVER_THREADS from the environment, or its defaults)."""

    workers: int | None = None
    threads: int | None = None
    rate_limit: str = DEFAULT_RATE_LIMIT
    extra_env: tuple[tuple[str, str], ...] = ()


def _access_status(line: str) -> int | None:
    """The status of an access log line, JSON or text; None for any other line."""
    if line.startswith("{") and f'"logger": "{_ACCESS_LOGGER}"' in line:
        try:
            record = json.loads(line)
            return int(record["status"]) if record.get("logger") == _ACCESS_LOGGER else None
        except (ValueError, KeyError, TypeError):
            return None
    text = _TEXT_ACCESS_LOG.match(line)
    return int(text.group(1)) if text else None


def _is_problem(line: str) -> bool:
    status = _access_status(line)
    if status is not None:  # its path could hold any of the words below
        return status >= 500
    return any(problem in line for problem in _LOG_PROBLEMS) or bool(_TEXT_PROBLEM.match(line))


@dataclass(frozen=True)
class ServerLog:
    """What the server wrote to its stdout and stderr, read as it grows."""

    path: Path

    def lines(self, *, access: bool = True) -> list[str]:
        try:
            lines = self.path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return lines if access else [line for line in lines if _access_status(line) is None]

    def tail(self, count: int = 30) -> str:
        return "\n".join(self.lines(access=False)[-count:])

    def shape(self) -> tuple[int, int]:
        """The server's processes, and threads per process, as uWSGI logged them at start."""
        threads = [
            int(spawned.group(1))
            for line in self.lines(access=False)
            if (spawned := _WORKER_SPAWNED.search(line))
        ]
        return len(threads), max(threads, default=0)

    def worker_boots(self) -> int:
        """Workers started so far: more than its processes means some were replaced."""
        return sum(
            bool(_WORKER_SPAWNED.search(line) or _WORKER_RESPAWNED.search(line))
            for line in self.lines(access=False)
        )

    def problems(self) -> list[str]:
        return [line for line in self.lines() if _is_problem(line)]


@dataclass
class RunningServer:
    """bin/serve, which execs uWSGI: its pid is uWSGI's master's."""

    url: str
    process: subprocess.Popen[bytes]
    log: ServerLog

    def pids(self) -> list[int]:
        """The master and its workers (direct children)."""
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.process.pid:
                children.append(int(entry))
        return [self.process.pid, *children]

    def cpu_by_pid(self) -> dict[int, float]:
        """CPU seconds of the master (first) and of each worker."""
        return {pid: _process_cpu_seconds(pid) for pid in self.pids()}


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database this process uses (the test database under
    pytest): the server must write where the checks read."""
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    host = str(settings_dict.get("HOST") or "")
    port = str(settings_dict.get("PORT") or "")
    if host.startswith("/"):
        host = quote(host, safe="")
    elif ":" in host:
        host = f"[{host}]"
    auth = f"{user}{':' + password if password else ''}@" if user else ""
    netloc = f"{auth}{host}{':' + port if port else ''}"
    return f"postgres://{netloc}/{quote(str(settings_dict['NAME']), safe='')}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(options: ServerOptions, *, bind: str, metrics_dir: Path) -> dict[str, str]:
    """bin/serve's environment: this one, with the bench's settings, then --server-env's,
    then the address and --workers and --threads."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "DATABASE_URL": database_url(connection.settings_dict),
            "DEBUG": "false",
            "API_RATE_LIMIT": options.rate_limit,
            # The keys were hashed here: the server must hash with the same secret,
            # whatever SECRET_KEY it gets. A random one unless the environment sets it,
            # so that no check for the demo's insecure default refuses to start.
            "API_KEY_HASH_SECRET": settings.API_KEY_HASH_SECRET,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # bin/serve empties the metrics directory it is given: one of the bench's own,
            # never one that a running server (from this environment) uses.
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    env.update(dict(options.extra_env))
    env["BIND"] = bind
    if options.workers is not None:
        env["WEB_CONCURRENCY"] = str(options.workers)
    if options.threads is not None:
        env["SERVER_THREADS"] = str(options.threads)
    return env


def _exit_status(process: subprocess.Popen[bytes]) -> int | None:
    """The server's exit status (negative: the signal that killed it) once its master has
    exited, else None. Not reaped: until `_stop` reaps it, its pid, which is also its
    process group's id, cannot be given to another process."""
    if process.returncode is not None:
        return process.returncode
    exited = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if exited is None:
        return None
    return exited.si_status if exited.si_code == os.CLD_EXITED else -exited.si_status


def _wait_ready(server: RunningServer, path: str, headers: dict[str, str]) -> httpx.Response:
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        code = _exit_status(server.process)
        if code is not None:
            raise BenchError(
                f"bin/serve exited with status {code} before answering; its log:\n"
                + server.log.tail()
            )
        try:
            return httpx.get(server.url + path, headers=headers, timeout=5, trust_env=False)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"bin/serve did not answer within {_READY_TIMEOUT:g} s; its log:\n"
                    + server.log.tail()
                ) from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to uWSGI's master, which (its SIGTERM hook, uwsgi.ini) stops its workers and
    exits; then SIGKILL to its process group, which holds the server's processes only (it
    was started in a session of its own): to all of them when the master did not exit in
    time, else to any worker left behind. The master is reaped last (see `_exit_status`)."""
    if _exit_status(process) is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _exit_status(process) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def server_running(
    options: ServerOptions, *, ready_path: str, headers: dict[str, str]
) -> Iterator[tuple[RunningServer, httpx.Response]]:
    """bin/serve on a free loopback port, answering; stopped on the way out, whatever
    happens (an error, Ctrl-C). Yields it and its answer to `ready_path`."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench_api-") as directory:
        env = server_env(
            options, bind=f"127.0.0.1:{port}", metrics_dir=Path(directory) / "prometheus"
        )
        log_path = Path(directory) / "server.log"
        with log_path.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own script and environment
                [str(Path(settings.BASE_DIR) / "bin" / "serve")],
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops it
            )
        server = RunningServer(
            url=f"http://127.0.0.1:{port}", process=process, log=ServerLog(log_path)
        )
        try:
            yield server, _wait_ready(server, ready_path, headers)
        finally:
            _stop(process)


# --- setup and checks ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchData:
    merchant: Merchant
    secret: str
    accounts: dict[str, int]  # public id -> pk


def bench_key_create() -> tuple[Merchant, str]:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    merchant = merchant_create(name=f"API bench {stamp}")
    _, secret = api_key_create(merchant=merchant, name="bench_api")
    return merchant, secret


def bench_accounts_create(
    *, base_url: str, merchant: Merchant, secret: str, count: int
) -> BenchData:
    """`count` USD wallets opened through the API, then funded by operator adjustments."""
    public_ids = []
    with httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=_REQUEST_TIMEOUT,
        trust_env=False,
    ) as client:
        for index in range(count):
            response = client.post(
                "/api/v1/accounts",
                json={"currency": CURRENCY, "description": f"bench_api {index}"},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            if response.status_code != 201:
                raise BenchError(
                    f"POST /api/v1/accounts answered {response.status_code}: {response.text[:500]}"
                )
            public_ids.append(response.json()["id"])
    accounts = Account.objects.filter(merchant=merchant).in_bulk(public_ids, field_name="public_id")
    if len(accounts) != len(public_ids):
        raise BenchError(
            f"the server at {base_url} created accounts that are not in the database "
            f"{connection.settings_dict['NAME']}: it must use the same database as the bench"
        )
    for account in accounts.values():
        adjustment_post(account=account, amount=FUNDING, reason="bench_api funding")
    return BenchData(
        merchant=merchant,
        secret=secret,
        accounts={public_id: account.pk for public_id, account in accounts.items()},
    )


def balance_total(bench: BenchData) -> int:
    total = Account.objects.filter(pk__in=bench.accounts.values()).aggregate(total=Sum("balance"))[
        "total"
    ]
    return int(total or 0)


def money_check(
    bench: BenchData, *, total_before: int, outcomes: Counter[str]
) -> tuple[str, list[str]]:
    """Money conserved: the bench accounts' total is what the funding put in; as many
    transfers succeeded (and ledger transfers touch the accounts) as were answered 201,
    and as many failed as were answered 402. Returns a summary and the violations."""
    total_after = balance_total(bench)
    succeeded = Transfer.objects.filter(
        merchant=bench.merchant, status=TransferStatus.SUCCEEDED
    ).count()
    failed = Transfer.objects.filter(merchant=bench.merchant, status=TransferStatus.FAILED).count()
    ledger = (
        LedgerTransaction.objects.filter(
            kind=LedgerTransactionKind.TRANSFER, entries__account_id__in=bench.accounts.values()
        )
        .distinct()
        .count()
    )
    created, declined = outcomes["201"], outcomes["402"]
    violations = []
    expected_total = FUNDING * len(bench.accounts)
    if total_before != expected_total or total_after != total_before:
        violations.append(
            f"the bench accounts held {total_before} after funding (expected {expected_total})"
            f" and {total_after} after the run"
        )
    if not succeeded == ledger == created:
        violations.append(
            f"{created} transfers answered 201, but {succeeded} succeeded transfers and "
            f"{ledger} ledger transfers on the bench accounts exist"
        )
    if failed != declined:
        violations.append(f"{declined} transfers answered 402, but {failed} failed ones exist")
    unknown = sum(count for outcome, count in outcomes.items() if outcome.startswith("error:"))
    if unknown and violations:
        violations.append(f"({unknown} transfers got no response: their outcome is unknown)")
    summary = (
        f"sum of the {len(bench.accounts)} bench accounts' balances {total_after} "
        f"(funded {expected_total}); {succeeded} transfers succeeded = {ledger} ledger "
        f"transfers = {created} answered 201; {failed} failed = {declined} answered 402"
    )
    return summary, violations


# --- the whole run ------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    url: str | None
    accounts: int
    clients: int
    seconds: float
    warmup: float
    mix: str
    pin_cpu: int | None
    server: ServerOptions
    client: str = HTTPX
    verbose: bool = False


def _row(name: str, per_second: float, stats: EndpointStats) -> str:
    statuses = "  ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
    return (
        f"{name:<34} {per_second:8.1f} req/s  p50 {stats.percentile_ms(0.50):7.2f} ms"
        f"  p99 {stats.percentile_ms(0.99):7.2f} ms  n {stats.count}  {statuses}"
    )


def report_lines(run: LoadResult) -> list[str]:
    lines = [
        _row(ENDPOINTS[endpoint], run.per_second(endpoint), stats)
        for endpoint, stats in run.stats.items()
    ]
    # Percentiles reported per endpoint (wrk) do not combine: no "all" row then.
    if len(run.stats) > 1 and all(s.reported_count is None for s in run.stats.values()):
        every = EndpointStats()
        for stats in run.stats.values():
            every.latencies.extend(stats.latencies)
            every.statuses.update(stats.statuses)
        lines.append(_row("all", every.count / run.elapsed if run.elapsed else 0.0, every))
    return lines


def bar_line(run: LoadResult) -> str:
    verdicts = []
    for endpoint, stats in run.stats.items():
        rate, p99 = run.per_second(endpoint), stats.percentile_ms(0.99)
        met = rate >= BAR_PER_SECOND[endpoint] and p99 < BAR_P99_MS
        verdicts.append(
            f"{endpoint} {rate:.0f}/s (≥ {BAR_PER_SECOND[endpoint]}) p99 {p99:.1f} ms "
            f"(< {BAR_P99_MS:g}): {'met' if met else 'NOT met'}"
        )
    return "bar: " + "; ".join(verdicts)


def bench_run(options: BenchOptions, write: Callable[[str], None]) -> list[str]:
    """Set up, load, check; `write` gets the report line by line. Returns the
    violations (empty when the run is clean)."""
    began = timezone.now()
    merchant, secret = bench_key_create()
    headers = {"Authorization": f"Bearer {secret}"}
    ready_path = "/api/v1/accounts?page_size=1"
    clients = f"{options.clients} {options.client} clients"
    if options.client == WRK:
        split = wrk_connections(options.mix, options.clients).items()
        shares = " + ".join(f"{count} {endpoint}" for endpoint, count in split)
        clients += f" (connections of wrk, the C load generator: {shares})"
    write(
        f"bench_api on {connection.settings_dict['NAME']}: mix {options.mix}, "
        f"{clients}, {options.seconds:g} s (after "
        f"{options.warmup:g} s of warm-up), {options.accounts} accounts; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_http_logs())
        server: RunningServer | None = None
        if options.url:
            base_url = options.url.rstrip("/")
            try:
                ready = httpx.get(
                    base_url + ready_path, headers=headers, timeout=10, trust_env=False
                )
            except httpx.HTTPError as error:
                raise BenchError(f"{base_url} does not answer: {error}") from error
            write(f"server: {base_url} (given)")
        else:
            server, ready = stack.enter_context(
                server_running(options.server, ready_path=ready_path, headers=headers)
            )
            base_url = server.url
            processes, threads = server.log.shape()
            write(
                f"server: uWSGI via bin/serve (uwsgi.ini) on {base_url}, "
                f"{processes} process{'es' if processes != 1 else ''} × "
                f"{threads} thread{'s' if threads != 1 else ''}; "
                f"DEBUG=false, API_RATE_LIMIT={options.server.rate_limit}"
            )
        if ready.status_code != 200:
            raise BenchError(f"GET {ready_path} answered {ready.status_code}: {ready.text[:500]}")
        bench = bench_accounts_create(
            base_url=base_url, merchant=merchant, secret=secret, count=options.accounts
        )
        total_before = balance_total(bench)
        plan = LoadPlan(
            base_url=base_url,
            secret=secret,
            account_ids=tuple(bench.accounts),
            mix=options.mix,
            clients=options.clients,
            seconds=options.seconds,
            warmup=options.warmup,
            client=options.client,
        )
        if options.pin_cpu is not None:
            write(f"load generator pinned to CPU {options.pin_cpu}")
        load = run_load(plan, server=server, pin_cpu=options.pin_cpu)
        problems = server.log.problems() if server is not None else []
        # Workers started beyond its processes: replaced ones (recycled, killed, crashed).
        restarts = server.log.worker_boots() - server.log.shape()[0] if server is not None else 0
        if server is not None and options.verbose:
            write("server log, without the access log (last lines):")
            for line in server.log.lines(access=False)[-20:]:
                write(f"  {line}")

    run = load.run
    for line in report_lines(run):
        write(line)
    requests = sum(stats.count for stats in run.stats.values())
    write(cpu_line(load.cpu_before, load.cpu_after, requests))
    if server is not None:
        write(f"server worker restarts (uWSGI's log): {restarts}")
    write(bar_line(run))

    violations = []
    outcomes: Counter[str] = Counter()
    for phase in (load.warmup, run):
        for endpoint, stats in phase.stats.items() if phase else ():
            if endpoint == TRANSFERS:
                outcomes.update(stats.statuses)
            unexpected = stats.unexpected(endpoint)
            if unexpected:
                violations.append(
                    f"{ENDPOINTS[endpoint]}: unexpected outcomes {dict(unexpected)}; e.g. "
                    + " | ".join(stats.samples)
                )
    if problems:
        violations.append(
            f"the server logged {len(problems)} problem lines, e.g. " + " | ".join(problems[:3])
        )
    summary, money = money_check(bench, total_before=total_before, outcomes=outcomes)
    violations += money
    write(f"money: {'ok' if not money else 'BROKEN'} ({summary})")
    checker, breaks = invariant_breaks(since=began)
    violations += breaks
    write(f"invariants: {'ok' if not breaks else 'BROKEN'} (checked by {checker})")
    return violations
