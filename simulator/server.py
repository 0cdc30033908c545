"""The simulator over HTTP: a threading HTTP/1.1 server (keep-alive) that calls the WSGI
application, holds or resets the connection when the answer is withheld, and a background
thread that settles asynchronous outcomes when they are due and delivers the webhooks."""

import logging
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from simulator.app import Hangup, SimulatorApp
from simulator.config import SimulatorConfig

logger = logging.getLogger("simulator")

WEBHOOK_TIMEOUT = 5.0
MAX_BODY_BYTES = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "SimulatorServer"
    timeout = 300  # an idle keep-alive connection is closed after this long
    # The headers and the body go out in two writes: without TCP_NODELAY the body would
    # wait for the client's delayed ACK of the headers (40 ms a request).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.send_error(411, "a Content-Length, not chunked")
            return
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            self.send_error(413, f"a Content-Length of at most {MAX_BODY_BYTES}")
            return
        length = int(declared)
        environ = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": self.path.split("?", 1)[0],
            "QUERY_STRING": self.path.split("?", 1)[1] if "?" in self.path else "",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "wsgi.input": _Body(self.rfile.read(length)),
            **{
                "HTTP_" + name.upper().replace("-", "_"): value
                for name, value in self.headers.items()
            },
        }
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            answer["status"], answer["headers"] = status, headers

        try:
            body = b"".join(self.server.app(environ, start_response))
        except Hangup as hangup:
            self._hang_up(hangup.how)
            return
        code, _, reason = answer["status"].partition(" ")
        self.send_response(int(code), reason)
        for name, value in answer["headers"]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _hang_up(self, how: str) -> None:
        if how == "timeout":  # no answer before the client's read timeout, then a close
            time.sleep(self.server.app.config.timeout_seconds)
        else:  # a reset: SO_LINGER 0 makes close() send RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self.server.resets_lock:
                self.server.resets.add(self.connection)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, size: int = -1) -> bytes:
        data, self.data = (self.data, b"") if size < 0 else (self.data[:size], self.data[size:])
        return data


class SimulatorServer(ThreadingHTTPServer):
    """The HTTP server; `serve_forever()` in the caller's thread, the webhook thread beside."""

    daemon_threads = True
    request_queue_size = 256  # a benchmark opens many connections at once
    webhook_attempts = 5  # then a delivery is given up, and logged
    webhook_backoff_seconds = 0.5  # before the second attempt; doubled each time

    def __init__(self, config: SimulatorConfig, host: str, port: int):
        self.app = SimulatorApp(config)
        self.resets: set[socket.socket] = set()  # connections to close with a reset
        self.resets_lock = threading.Lock()
        self._stop = threading.Event()
        self._deliverer = threading.Thread(target=self._deliver_forever, daemon=True)
        # Last: a bind that fails calls server_close, which needs the attributes above.
        super().__init__((host, port), _Handler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._deliverer.start()
        try:
            super().serve_forever(poll_interval)
        finally:
            self._stop.set()

    def server_close(self) -> None:
        self._stop.set()
        if self._deliverer.is_alive():
            self._deliverer.join()
        super().server_close()
        self.app.store.close()

    def shutdown_request(self, request: Any) -> None:
        # A connection to reset is closed without the shutdown(SHUT_WR) that would send a
        # FIN first: the client sees a reset, not an empty answer.
        with self.resets_lock:
            reset = request in self.resets
            self.resets.discard(request)
        if reset:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer is its own business; anything else is logged.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            logger.exception("simulator: error while serving %s", client_address)

    def _deliver_forever(self) -> None:
        with httpx.Client(timeout=WEBHOOK_TIMEOUT, trust_env=False) as client:
            while not self._stop.wait(0.05):
                try:
                    self.deliver_due(client)
                except Exception:  # the thread must outlive any one failure
                    logger.exception("simulator: settling or delivering webhooks failed")

    def deliver_due(self, client: httpx.Client) -> None:
        """Settle what is due, then send each webhook that is due; a failed delivery is tried
        again later (0.5 s, 1 s, 2 s, ...), `webhook_attempts` times in all."""
        app, now = self.app, time.time()
        with app.store.transaction() as tx:
            app.engine.settle_due(tx, now)
            due = tx.execute(
                "SELECT id, provider, body, attempts, last_error FROM webhooks"
                " WHERE status = 'pending' AND next_try_at <= ? ORDER BY id LIMIT 100",
                (now,),
            ).fetchall()
        for row in due:
            fmt = app.formats[row["provider"]]
            url = f"{app.config.webhook_url.rstrip('/')}/webhooks/providers/{fmt.name}/"
            body = bytes(row["body"])
            headers = {"Content-Type": "application/json", **fmt.sign(body, time.time())}
            try:
                status = client.post(url, content=body, headers=headers).status_code
                error = "" if 200 <= status < 300 else f"answered {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            attempts = row["attempts"] + 1
            if not error:
                state = "sent"
            elif attempts >= self.webhook_attempts:
                state = "failed"
                logger.warning(
                    "simulator: webhook %s to %s given up after %s attempts: %s",
                    row["id"],
                    url,
                    attempts,
                    error,
                )
            else:
                state = "pending"
            next_try_at = time.time() + self.webhook_backoff_seconds * 2 ** (attempts - 1)
            with app.store.transaction() as tx:
                tx.execute(
                    "UPDATE webhooks SET status = ?, attempts = ?, last_error = ?,"
                    " next_try_at = ? WHERE id = ?",
                    (state, attempts, error or row["last_error"], next_try_at, row["id"]),
                )
