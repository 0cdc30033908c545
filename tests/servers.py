"""Servers that tests start with bin/serve: a port for one, its environment, the server
itself (up, with the app loaded in every worker), and its processes."""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def uwsgi_pids(port: int) -> list[int]:
    """The uWSGI processes listening on 127.0.0.1:`port`, whatever their parent (a worker
    whose master is gone is init's). ps shows the master and each worker alike: `uwsgi`,
    with the command line bin/serve execs (`.venv/bin/python .venv/bin/uwsgi --ini
    uwsgi.ini --http-socket 127.0.0.1:<port> ...`)."""
    address = f"127.0.0.1:{port}".encode()
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                arguments = cmdline.read().split(b"\0")
        except OSError:
            continue
        if address in arguments and any(os.path.basename(a) == b"uwsgi" for a in arguments):
            found.append(int(entry))
    return found


SERVE = Path(settings.BASE_DIR) / "bin" / "serve"


def serve_env(tmp_path: Path, port: int, **overrides: str) -> dict[str, str]:
    """Production settings; its metrics directory in `tmp_path`."""
    env = dict(os.environ)
    for name in ("ACCESS_LOG", "LOG_FORMAT"):  # their defaults are the production's
        env.pop(name, None)
    env.update(
        BIND=f"127.0.0.1:{port}",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        **overrides,
    )
    return env


def wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path, workers: int) -> None:
    """Until `url` answers and every worker has loaded the app (a worker stopped while it
    imports the app fails to load it, and then uWSGI exits with status 22)."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=5, trust_env=False)
            if log.read_text().count("WSGI app 0 (mountpoint='') ready") == workers:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"bin/serve did not come up at {url}; its log:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serving(
    tmp_path: Path, port: int, workers: int, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """bin/serve with `workers` processes, up and with the app loaded in each; killed on the
    way out if the test has not stopped it."""
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own script
            [SERVE],
            env=serve_env(tmp_path, port, WEB_CONCURRENCY=str(workers), **env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/health/live", log, workers)
        yield process, log
    finally:
        if process.poll() is None:  # the test failed before it was stopped
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
