"""bin/serve, the production server: it refuses a bad setting before starting anything;
the server it starts writes the access log, JSON lines with each response's request id,
and stops on SIGTERM, leaving no process behind."""

import contextlib
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from accounts.api_keys import api_key_create
from accounts.services import merchant_create
from bench.api import database_url
from tests.servers import SERVE, free_port, serve_env, serving, uwsgi_pids, wait_until_up


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_web_concurrency_is_refused_before_anything_starts(
    tmp_path: Path, value: str
) -> None:
    port = free_port()

    result = subprocess.run(  # noqa: S603 - our own script
        [SERVE],
        env=serve_env(tmp_path, port, WEB_CONCURRENCY=value),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode != 0
    assert result.stderr == (
        f"bin/serve: WEB_CONCURRENCY must be a whole number of at least 1, not '{value}'\n"
    )
    assert result.stdout == ""  # no uWSGI banner
    assert not (tmp_path / "metrics").exists()
    assert uwsgi_pids(port) == []


@pytest.mark.slow
def test_the_server_writes_json_access_lines_with_the_request_id(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/health/live"
    with serving(tmp_path, port, workers=2) as (process, log):
        given = httpx.get(url, headers={"X-Request-Id": "req_serve_test"}, trust_env=False)
        generated = httpx.get(url, trust_env=False)
        running = uwsgi_pids(port)
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)

    # bin/serve became uWSGI's master (exec), which ran two workers and stopped them.
    assert process.pid in running and len(running) == 3
    assert status == 0
    assert uwsgi_pids(port) == []
    assert given.status_code == generated.status_code == 200
    assert given.headers["X-Client-Request-Id"] == "req_serve_test"
    assert given.headers["X-Request-Id"] != "req_serve_test"  # ours, always
    assert generated.headers["X-Request-Id"].startswith("req_")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    for response in (given, generated):
        [access] = [
            line
            for line in lines
            if line["logger"] == "moneta.access"
            and line["request_id"] == response.headers["X-Request-Id"]
        ]
        assert access["message"] == "GET /health/live 200"
        assert access["client_request_id"] == response.headers.get("X-Client-Request-Id", "")
        assert (access["method"], access["path"], access["status"]) == ("GET", "/health/live", 200)
        assert access["level"] == "INFO"
        assert isinstance(access["duration_ms"], float)


@pytest.mark.slow
def test_sigterm_answers_the_request_in_flight_then_stops(tmp_path: Path) -> None:
    port = free_port()
    body = json.dumps({"name": "late"}).encode().ljust(100)
    with serving(tmp_path, port, workers=1) as (process, _):
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        client.sendall(
            b"POST /api/v1/customers HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + body[:50]
        )
        time.sleep(0.5)  # the worker is reading the body
        process.send_signal(signal.SIGTERM)
        time.sleep(1)
        client.sendall(body[50:])
        response = client.recv(65536)
        client.close()
        status = process.wait(timeout=40)

    # Answered (no API key: a 401), not dropped; then the server stopped cleanly.
    assert response.startswith(b"HTTP/1.1 401 "), response[:200]
    assert status == 0
    assert uwsgi_pids(port) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


@pytest.mark.slow
def test_headers_up_to_64_kib_are_served(tmp_path: Path) -> None:
    # uWSGI's default buffer (4 KiB) would drop such a request without an answer.
    port = free_port()
    with serving(tmp_path, port, workers=1):
        response = httpx.get(
            f"http://127.0.0.1:{port}/health/live",
            headers={"X-Large": "x" * 60_000},
            trust_env=False,
        )
    assert response.status_code == 200


@pytest.mark.slow
def test_sighup_reloads_and_serves_again(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/health/live"
    with serving(tmp_path, port, workers=1) as (process, log):
        process.send_signal(signal.SIGHUP)
        # The master restarts itself (same pid) and loads the app in a new worker.
        wait_until_up(process, url, log, workers=2)
        after = httpx.get(url, trust_env=False)
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)

    assert "binary reloading uWSGI" in log.read_text()
    assert after.status_code == 200
    assert status == 0


def _closed(client: socket.socket) -> bool:
    """Whether the server has closed (or reset) the connection (having answered nothing)."""
    try:
        return client.recv(65536, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:  # open, nothing to read
        return False
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_client_trickling_its_body_loses_its_worker_at_the_timeout(tmp_path: Path) -> None:
    # A key the server can see (committed, in the test database): the API reads the body.
    _, secret = api_key_create(merchant=merchant_create(name="Trickle"))
    port = free_port()
    with serving(
        tmp_path,
        port,
        workers=1,
        SERVER_TIMEOUT="2",
        DATABASE_URL=database_url(connection.settings_dict),
        API_KEY_HASH_SECRET=settings.API_KEY_HASH_SECRET,
    ):
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        client.sendall(
            b"POST /api/v1/customers HTTP/1.1\r\nHost: localhost\r\n"
            b"Authorization: Bearer " + secret.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        while time.monotonic() - started < 15 and not _closed(client):
            with contextlib.suppress(OSError):
                client.sendall(b" ")  # a byte every half second: 50 s for the whole body
            time.sleep(0.5)
        held = time.monotonic() - started
        client.close()
        # The worker was replaced; the server answers again.
        answered = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=30, trust_env=False)

    assert held < 8  # the 2 s timeout (uWSGI checks it every second or so), not 15 s
    assert answered.status_code == 200
