"""A real HTTP receiver on 127.0.0.1 for webhook tests: it records every request (headers,
body, time of arrival) and answers with what the test scripted."""

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time()

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Script:
    """Answers, in turn, one per request; when only one is left it answers every request
    after. An answer: a status code, ("sleep", seconds) then 200, or ("redirect", url)."""

    answers: list[object] = field(default_factory=lambda: [200])

    def next(self) -> object:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script = Script()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            at=time.time(),
                        )
                    )
                    answer = receiver.script.next()
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(float(answer[1]))
                    answer = 200
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(302)
                    self.send_header("location", str(answer[1]))
                else:
                    self.send_response(int(answer))  # type: ignore[call-overload]
                reply = b'{"ok": true}'
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    def answer(self, *answers: object) -> None:
        with self._lock:
            self.script = Script(list(answers))

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def verified(self, secret: str) -> list[dict[str, object]]:
        """Every request's event, each checked with the standardwebhooks package."""
        webhook = Webhook(secret)
        return [webhook.verify(r.body, r.headers) for r in self.requests()]


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(5)
