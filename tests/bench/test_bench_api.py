"""`bench_api` drives the real server (bin/serve) over HTTP, reports per endpoint, counts
the money afterwards, and never leaves a process of its uWSGI behind."""

import asyncio
import os
import re
import shutil
import socket
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from pytest_django.fixtures import Settings
from pytest_django.live_server_helper import LiveServer

from accounts.services import account_create, merchant_create
from bench.api import (
    FUNDING,
    WRK_MISSING,
    BenchData,
    BenchError,
    LoadResult,
    RawHttpConnection,
    ServerLog,
    default_client,
    money_check,
    parse_wrk_output,
    report_lines,
    wrk_connections,
)
from ledger.services import adjustment_post
from payments.models import Transfer, TransferStatus
from tests.servers import uwsgi_pids

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (Debian/Ubuntu: apt-get install wrk)"
)

ROW = r"^{label}\s+\d+\.\d req/s  p50\s+\d+\.\d\d ms  p99\s+\d+\.\d\d ms  n (\d+)  (.*)$"
TRANSFERS = ROW.format(label=re.escape("POST /api/v1/transfers"))
BALANCES = ROW.format(label=re.escape("GET /api/v1/accounts/{id}/balance"))


def assert_cpu_line(output: str) -> None:
    assert re.search(
        r"^CPU during the run .*load generator \d+% = \d+\.\d\d ms a request, "
        r"server \d+% = \d+\.\d\d ms a request",
        output,
        re.MULTILINE,
    ), output


def assert_checks_pass(output: str) -> None:
    assert "money: ok (" in output, output
    assert "invariants: ok (checked by reconcile_ledger" in output, output


def bench(*args: str) -> str:
    out = StringIO()
    call_command(
        "bench_api",
        "--clients",
        "2",
        "--seconds",
        "2",
        "--warmup",
        "0.5",
        "--accounts",
        "4",
        *args,
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


def statuses(text: str) -> Counter[str]:
    return Counter({k: int(v) for k, v in re.findall(r"(\S+): (\d+)", text)})


def server_port(output: str) -> int:
    found = re.search(
        r"^server: uWSGI via bin/serve \(uwsgi\.ini\) on http://127\.0\.0\.1:(\d+), "
        r"\d+ process(?:es)? × \d+ threads?; DEBUG=false, API_RATE_LIMIT=",
        output,
        re.MULTILINE,
    )
    assert found, output
    return int(found.group(1))


def assert_nothing_listens(port: int) -> None:
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(2)
        probe.connect(("127.0.0.1", port))


def children_running(program: bytes) -> list[int]:
    """Processes of ours still running `program` (the bench must have stopped them): wrk.
    The server's are found by their port (`uwsgi_pids`): its workers are not ours."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and program in command:
            found.append(int(entry))
    return found


def test_mixed_load_through_bin_serve_conserves_the_money() -> None:
    output = bench("--mix", "mixed", "--workers", "1", "--threads", "2", "--client", "httpx")

    port = server_port(output)
    assert ", 1 process × 2 threads; " in output, output
    transfers = re.search(TRANSFERS, output, re.MULTILINE)
    balances = re.search(BALANCES, output, re.MULTILINE)
    assert transfers and balances, output
    assert re.search(r"^all\s+\d+\.\d req/s", output, re.MULTILINE), output
    assert set(statuses(balances.group(2))) == {"200"}, output
    assert set(statuses(transfers.group(2))) <= {"201", "402"}, output
    assert_cpu_line(output)
    assert re.search(r"^server worker restarts \(uWSGI's log\): 0$", output, re.MULTILINE)
    assert re.search(r"^bar: transfers \d+/s .*; balances \d+/s", output, re.MULTILINE)
    assert_checks_pass(output)
    # The server wrote into the test database: the transfers it answered 201 are here
    # (the warm-up's too, so at least as many as the timed run's).
    succeeded = Transfer.objects.filter(status=TransferStatus.SUCCEEDED).count()
    assert succeeded >= statuses(transfers.group(2))["201"] > 0
    assert f"{succeeded} transfers succeeded = {succeeded} ledger transfers" in output
    assert_nothing_listens(port)
    assert uwsgi_pids(port) == []


@needs_wrk
@pytest.mark.parametrize(
    ("mix", "connections"),
    [
        ("transfers", "3 transfers"),
        ("balances", "3 balances"),
        ("mixed", "1 transfers + 2 balances"),
    ],
)
def test_wrk_load_through_bin_serve_conserves_the_money(mix: str, connections: str) -> None:
    output = bench(
        *("--mix", mix, "--client", "wrk", "--clients", "3", "--warmup", "1"),
        *("--workers", "1", "--threads", "2"),
    )

    port = server_port(output)
    assert f"3 wrk clients (connections of wrk, the C load generator: {connections})" in output
    rows = {
        "transfers": re.search(TRANSFERS, output, re.MULTILINE),
        "balances": re.search(BALANCES, output, re.MULTILINE),
    }
    answered = {"transfers": Counter[str](), "balances": Counter[str]()}
    for endpoint, row in rows.items():
        if endpoint not in connections:
            assert row is None, output
            continue
        assert row, output
        answered[endpoint] = statuses(row.group(2))
        assert int(row.group(1)) == sum(answered[endpoint].values()) > 0, output
    assert set(answered["transfers"]) <= {"201", "402"}, output
    assert set(answered["balances"]) <= {"200"}, output
    # wrk reports percentiles per process, which do not combine into an "all" row.
    assert not re.search(r"^all\s", output, re.MULTILINE), output
    assert_cpu_line(output)
    assert re.search(r"^bar: ", output, re.MULTILINE), output
    # No transfer was left under way at the end of a phase: every one answered is counted.
    assert_checks_pass(output)
    succeeded = Transfer.objects.filter(status=TransferStatus.SUCCEEDED).count()
    assert succeeded >= answered["transfers"]["201"]  # the warm-up's are in the database too
    assert (succeeded > 0) == (mix != "balances")
    assert_nothing_listens(port)
    assert uwsgi_pids(port) == []
    assert children_running(b"wrk") == []


def test_the_wrk_report_is_parsed_into_endpoint_stats() -> None:
    transfers, seconds = parse_wrk_output(
        "Running 3s test @ http://127.0.0.1:8000\n"
        "  1 threads and 2 connections\n"
        "bench_api-wrk requests 121\n"
        "bench_api-wrk duration_us 2500000\n"
        "bench_api-wrk latency_us 50 1500\n"
        "bench_api-wrk latency_us 99 12345\n"
        "bench_api-wrk outcome 201 117\n"
        "bench_api-wrk outcome 500 4\n"
        "bench_api-wrk outcome error:read 1\n"
        'bench_api-wrk sample 500 {"error": {"type": "api_error"}}\n'
        "Requests/sec:     48.40\n"
    )
    balances, _ = parse_wrk_output(
        "bench_api-wrk requests 30\nbench_api-wrk duration_us 2000000\n"
        "bench_api-wrk latency_us 50 700\nbench_api-wrk latency_us 99 2000\n"
        "bench_api-wrk outcome 200 30\n"
    )

    assert seconds == 2.5
    assert transfers.count == 121
    assert (transfers.percentile_ms(0.50), transfers.percentile_ms(0.99)) == (1.5, 12.345)
    assert transfers.statuses == Counter({"201": 117, "500": 4, "error:read": 1})
    assert transfers.samples == ['500 {"error": {"type": "api_error"}}']
    assert transfers.unexpected("transfers") == Counter({"500": 4, "error:read": 1})
    run = LoadResult(
        mix="mixed", clients=3, elapsed=2.5, stats={"transfers": transfers, "balances": balances}
    )
    assert report_lines(run) == [
        "POST /api/v1/transfers                 48.4 req/s  p50    1.50 ms  p99   12.35 ms"
        "  n 121  201: 117  500: 4  error:read: 1",
        "GET /api/v1/accounts/{id}/balance      12.0 req/s  p50    0.70 ms  p99    2.00 ms"
        "  n 30  200: 30",
    ]
    with pytest.raises(BenchError, match="wrk printed no summary"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")
    assert wrk_connections("mixed", 8) == {"transfers": 1, "balances": 7}
    assert wrk_connections("mixed", 1) == {"transfers": 1, "balances": 1}
    assert wrk_connections("balances", 8) == {"balances": 8}


def test_wrk_asked_for_but_not_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    monkeypatch.setenv("PATH", os.fspath(tmp_path))  # a directory without wrk

    assert default_client() == "raw"
    with pytest.raises(CommandError, match=re.escape(WRK_MISSING)):
        bench("--client", "wrk")


def test_balance_reads_against_a_given_url(live_server: LiveServer, settings: Settings) -> None:
    settings.API_RATE_LIMIT = "1000000/second"

    output = bench("--mix", "balances", "--url", live_server.url, "--client", "raw")

    assert "2 raw clients" in output
    assert f"server: {live_server.url} (given)" in output
    balances = re.search(BALANCES, output, re.MULTILINE)
    assert balances and int(balances.group(1)) > 0, output
    assert set(statuses(balances.group(2))) == {"200"}, output
    assert "POST /api/v1/transfers" not in output
    assert "money: ok (" in output
    assert "invariants: ok" in output
    assert not Transfer.objects.exists()


async def _canned_server(responses: list[bytes]) -> tuple[asyncio.Server, int]:
    """A server that answers each connection's requests with the next canned responses,
    closing the connection after a response that says so."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while responses:
            await reader.readuntil(b"\r\n\r\n")
            response = responses.pop(0)
            writer.write(response)
            await writer.drain()
            if b"Connection: close" in response:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_the_raw_client_reads_lengths_chunks_and_closed_connections() -> None:
    async def exchange() -> list[tuple[int, bytes]]:
        server, port = await _canned_server(
            [
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
                b"HTTP/1.1 402 Payment Required\r\nConnection: close\r\n\r\nuntil the end",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain",
            ]
        )
        async with server:
            raw = RawHttpConnection(f"http://127.0.0.1:{port}", {"Authorization": "Bearer x"})
            results = [
                await raw.request("GET", "/a", None, {}),
                await raw.request("POST", "/b", b"{}", {"Idempotency-Key": "k"}),
                await raw.request("GET", "/c", None, {}),
                await raw.request("GET", "/d", None, {}),  # on a new connection
            ]
            raw.close()
        return results

    assert asyncio.run(exchange()) == [
        (200, b"hi"),
        (201, b"abcde"),
        (402, b"until the end"),
        (200, b"again"),
    ]


def test_the_server_is_stopped_when_the_setup_fails() -> None:
    out = StringIO()
    with pytest.raises(CommandError, match="answered 401"):
        call_command(
            "bench_api",
            "--seconds",
            "1",
            "--workers",
            "1",
            "--server-env",
            "API_KEY_HASH_SECRET=not-the-one-the-key-was-hashed-with",
            stdout=out,
            stderr=StringIO(),
        )

    port = server_port(out.getvalue())
    assert_nothing_listens(port)
    assert uwsgi_pids(port) == []


def test_a_server_that_exits_at_start_is_reported_with_its_log() -> None:
    with pytest.raises(CommandError) as refused:
        bench("--server-env", "WEB_CONCURRENCY=abc")

    message = str(refused.value)
    assert message.startswith("bin/serve exited with status 1 before answering; its log:\n")
    assert "WEB_CONCURRENCY must be a whole number of at least 1, not 'abc'" in message


def test_workers_and_threads_are_refused_with_a_url() -> None:
    with pytest.raises(CommandError, match="--workers and --threads are for the server"):
        bench("--url", "http://127.0.0.1:1", "--workers", "2")


def test_the_server_log_gives_its_shape_restarts_and_problems(tmp_path: Path) -> None:
    ok_line = (
        '{"level": "INFO", "logger": "moneta.access", "message": "GET /health/Traceback 200", '
        '"path": "/health/Traceback", "status": 200, "request_id": "req_1"}'
    )
    failed_line = (
        '{"level": "INFO", "logger": "moneta.access", "message": "POST /api/v1/transfers 502", '
        '"path": "/api/v1/transfers", "status": 502, "request_id": "req_2"}'
    )
    error_line = (
        '{"level": "ERROR", "logger": "django.request", "message": "Internal Server Error"}'
    )
    text_ok = "2026-01-02 03:04:05,678 INFO moneta.access [req_3] GET /health/live 200"
    text_failed = "2026-01-02 03:04:05,679 INFO moneta.access [req_4] GET /api/v1/x 500"
    text_error = "2026-01-02 03:04:05,680 ERROR django.request [req_4] Internal Server Error"
    harakiri = "HARAKIRI ON WORKER 1 (pid: 101, try: 1)"
    died = "DAMN ! worker 1 (pid: 101) died, killed by signal 9 :( trying respawn ..."
    traceback = "Traceback (most recent call last):"
    uwsgi_lines = [
        "spawned uWSGI master process (pid: 100)",
        "spawned uWSGI worker 1 (pid: 101, cores: 2)",
        "spawned uWSGI worker 2 (pid: 102, cores: 2)",
        harakiri,
        died,
        "Respawned uWSGI worker 1 (new pid: 103)",
        "...The work of process 102 is done. Seeya!",
        "Respawned uWSGI worker 2 (new pid: 104)",
        traceback,
    ]
    path = tmp_path / "server.log"
    lines = [*uwsgi_lines, ok_line, failed_line, error_line, text_ok, text_failed, text_error]
    path.write_text("\n".join(lines) + "\n")
    log = ServerLog(path)

    assert log.shape() == (2, 2)  # processes, threads each
    assert log.worker_boots() == 4
    assert log.lines(access=False) == [*uwsgi_lines, error_line, text_error]
    # A 2xx access line is none, whatever its path says.
    assert log.problems() == [
        harakiri,
        died,
        traceback,
        failed_line,
        error_line,
        text_failed,
        text_error,
    ]


def test_a_201_without_its_transfer_is_a_violation() -> None:
    merchant = merchant_create(name="Bench check")
    accounts = [account_create(merchant=merchant, currency="USD") for _ in range(2)]
    for account in accounts:
        adjustment_post(account=account, amount=FUNDING, reason="bench check")
    bench_data = BenchData(
        merchant=merchant, secret="", accounts={a.public_id: a.pk for a in accounts}
    )

    summary, violations = money_check(
        bench_data, total_before=2 * FUNDING, outcomes=Counter({"201": 1})
    )

    assert "0 transfers succeeded = 0 ledger transfers = 1 answered 201" in summary
    assert violations == [
        "1 transfers answered 201, but 0 succeeded transfers and 0 ledger transfers on the "
        "bench accounts exist"
    ]


def test_refuses_a_database_other_than_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "vendor", "sqlite")

    with pytest.raises(CommandError, match="needs PostgreSQL"):
        bench()
