"""The simulator's HTTP server in a thread, and a receiver for its webhooks."""

import contextlib
import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulator.config import SimulatorConfig
from simulator.server import SimulatorServer


@contextlib.contextmanager
def running(config: SimulatorConfig, webhook_backoff_seconds: float = 0.05) -> Iterator[str]:
    """The simulator over HTTP on a free port (failed webhooks tried again quickly); its
    base URL."""
    server = SimulatorServer(config, "127.0.0.1", 0)
    server.webhook_backoff_seconds = webhook_backoff_seconds
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Received:
    """What a webhook receiver was sent: (path, headers, body) in a queue."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        self.failures_left = 0  # answer 500 to this many deliveries first

    def next(self, timeout: float = 5) -> tuple[str, dict[str, str], bytes]:
        return self.calls.get(timeout=timeout)

    def json(self, timeout: float = 5) -> tuple[str, dict[str, str], Any]:
        path, headers, body = self.next(timeout)
        return path, headers, json.loads(body)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, Received]]:
    """A small HTTP server that records every POST; its base URL and the record."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if received.failures_left > 0:
                received.failures_left -= 1
                self.send_response(500)
            else:
                received.calls.put((self.path, dict(self.headers.items()), body))
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
