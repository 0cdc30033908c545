"""The simulator as a WSGI application: the router, the authentication and idempotency
pipeline that both wire formats share, the fault switches and the admin (/_simulator/).

A call whose answer must not arrive (pm_card_timeout, the drop_after_commit fault) raises
`Hangup` once its work is committed: the HTTP server (server.py) then holds or resets the
connection; the in-process application (`inprocess_app`) raises what httpx raises over a
real connection."""

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from simulator.config import SimulatorConfig
from simulator.engine import FAULT_FIELDS, Engine, EngineError, Modification, Obj
from simulator.store import Store

StartResponse = Callable[..., Any]
logger = logging.getLogger("simulator")


class Hangup(Exception):
    """The call is done (and stored) but its answer is withheld: `timeout` (held, then the
    connection closed) or `reset` (the connection reset at once)."""

    def __init__(self, how: Literal["timeout", "reset"]):
        super().__init__(how)
        self.how = how


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> "Request":
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        return cls(
            method=environ["REQUEST_METHOD"].upper(),
            path=environ.get("PATH_INFO") or "/",
            query=urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
        )

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    store: bool = True  # kept for the idempotency key (False: errors before anything was done)
    hangup: Literal["timeout", ""] = ""  # the first answer withheld (pm_card_timeout)


def json_response(status: int, data: Any, **kwargs: Any) -> Response:
    return Response(status, json.dumps(data).encode(), **kwargs)


@dataclass(frozen=True)
class Call:
    """One provider call as a route handler sees it."""

    tx: sqlite3.Connection
    request: Request
    args: tuple[str, ...]  # the path's captured parts
    params: dict[str, Any]  # the parsed body (POST) or query (GET)
    idempotency_key: str  # '' for a GET
    now: float


Handler = Callable[[Engine, Call], Response]


class WireFormat:
    """One provider's wire format: a thin translation to and from the engine."""

    name: str
    prefix: str
    routes: list[tuple[str, re.Pattern[str], Handler]]

    def __init__(self, config: SimulatorConfig):
        self.config = config

    def authenticate(self, request: Request) -> Response | None:
        """None when the caller is who it says, else the answer."""
        raise NotImplementedError

    def parse(self, request: Request) -> dict[str, Any]:
        """The body's parameters; raises EngineError when it cannot be read."""
        raise NotImplementedError

    def error(self, error: EngineError) -> Response:
        raise NotImplementedError

    def idempotency_mismatch(self) -> Response:
        raise NotImplementedError

    def unavailable(self) -> Response:
        raise NotImplementedError

    def rate_limited(self, retry_after: int) -> Response:
        raise NotImplementedError

    def webhook(self, event: str, obj: Obj, mod: Modification | None, now: float) -> bytes | None:
        """The body of the webhook `event` sends (None: this provider sends none for it)."""
        raise NotImplementedError

    def sign(self, body: bytes, now: float) -> dict[str, str]:
        """Headers that sign a webhook body at delivery time."""
        raise NotImplementedError

    def new_id(self, kind: str) -> str:
        raise NotImplementedError

    def route(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]] | None:
        for route_method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler, match.groups()
        return None


def fingerprint(request: Request, params: dict[str, Any]) -> str:
    canonical = json.dumps([request.method, request.path, params], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class SimulatorApp:
    """The WSGI application. One instance per store file and process."""

    def __init__(self, config: SimulatorConfig):
        # The formats import this module: imported here, they stay thin.
        from simulator.adyen_api import AdyenFormat
        from simulator.stripe_api import StripeFormat

        self.config = config
        self.store = Store(config.store_path)
        self.formats: dict[str, WireFormat] = {
            fmt.name: fmt for fmt in (StripeFormat(config), AdyenFormat(config))
        }
        self.engine = Engine(
            async_seconds=config.async_seconds,
            new_id=lambda provider, kind: self.formats[provider].new_id(kind),
            on_event=self._enqueue_webhook if config.webhook_url else None,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self.handle(Request.from_environ(environ))
        except Hangup:
            raise
        except Exception:  # a bug of ours: rolled back, answered, logged; the server goes on
            logger.exception("simulator: error in %s", environ.get("PATH_INFO"))
            response = json_response(500, {"error": "the simulator failed (see its log)"})
        headers = [("Content-Type", response.content_type), *response.headers]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {_REASONS.get(response.status, 'Status')}", headers)
        return [response.body]

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/_simulator/"):
            return self._admin(request)
        for fmt in self.formats.values():
            if request.path.startswith(fmt.prefix):
                return self._provider_call(fmt, request)
        return json_response(404, {"error": f"nothing at {request.path}"})

    def _provider_call(self, fmt: WireFormat, request: Request) -> Response:
        refused = fmt.authenticate(request)
        if refused is not None:
            return refused
        found = fmt.route(request.method, request.path)
        if found is None:
            return fmt.error(
                EngineError(
                    "missing",
                    "resource_missing",
                    f"Unrecognized request URL ({request.method}: {request.path}).",
                )
            )
        handler, args = found
        with self.store.reading() as connection:
            latency_ms = self.engine.faults(connection)["latency_ms"]
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if request.method != "POST":
            params = {name: values[-1] for name, values in request.query.items()}
            with self.store.transaction() as tx:
                try:
                    return handler(self.engine, Call(tx, request, args, params, "", time.time()))
                except EngineError as error:
                    return fmt.error(error)
        return self._post(fmt, request, handler, args)

    def _post(
        self, fmt: WireFormat, request: Request, handler: Handler, args: tuple[str, ...]
    ) -> Response:
        key = request.headers.get("idempotency-key", "")
        if not key or len(key) > 255:
            return fmt.error(
                EngineError(
                    "invalid",
                    "parameter_missing",
                    "The simulator needs an Idempotency-Key header (1 to 255 characters)"
                    " on every POST.",
                    "Idempotency-Key",
                )
            )
        try:
            params = fmt.parse(request)
        except EngineError as error:
            return fmt.error(error)
        replayed = False
        with self.store.transaction() as tx:
            fault = self.engine.take_fault(tx)
            if fault == "unavailable":
                return fmt.unavailable()
            if fault == "rate_limited":
                return fmt.rate_limited(self.engine.faults(tx)["retry_after"])
            digest = fingerprint(request, params)
            stored = tx.execute(
                "SELECT * FROM idempotency WHERE provider = ? AND key = ?", (fmt.name, key)
            ).fetchone()
            if stored is not None:
                if stored["fingerprint"] != digest:
                    return fmt.idempotency_mismatch()
                replayed = True
                response = Response(
                    stored["status"],
                    bytes(stored["body"]),
                    headers=[
                        *((name, value) for name, value in json.loads(stored["headers"])),
                        ("Idempotent-Replayed", "true"),
                    ],
                )
            else:
                call = Call(tx, request, args, params, key, time.time())
                try:
                    response = handler(self.engine, call)
                except EngineError as error:
                    response = fmt.error(error)  # committed all the same: nothing was written
                if response.store:  # or only the flaky marker, which must stay
                    tx.execute(
                        "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            fmt.name,
                            key,
                            digest,
                            response.status,
                            json.dumps(response.headers),
                            response.body,
                            call.now,
                        ),
                    )
        if fault == "drop_after_commit":
            raise Hangup("reset")
        if response.hangup and not replayed:
            raise Hangup("timeout")
        if fault == "invalid_json":
            response.body = response.body[: len(response.body) // 2]
        return response

    def _enqueue_webhook(
        self, tx: sqlite3.Connection, event: str, obj: Obj, mod: Modification | None
    ) -> None:
        now = time.time()
        body = self.formats[obj.provider].webhook(event, obj, mod, now)
        if body is not None:
            tx.execute(
                "INSERT INTO webhooks (provider, event_type, object_id, body, status,"
                " next_try_at, created) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (obj.provider, event, obj.id, body, now, now),
            )

    # The admin: tests and the benchmark

    def _admin(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        with self.store.transaction() as tx:
            if route == ("GET", "/_simulator/charges"):
                by = request.arg("by") or "key"
                if by not in ("key", "reference"):
                    return json_response(400, {"error": "by must be key or reference"})
                return json_response(200, self.engine.charges(tx, by=by))  # type: ignore[arg-type]
            if route == ("GET", "/_simulator/faults"):
                return json_response(200, self.engine.faults(tx))
            if route == ("POST", "/_simulator/faults"):
                try:
                    values = json.loads(request.body)
                except ValueError:
                    values = None
                if not isinstance(values, dict) or not values:
                    return json_response(400, {"error": "a JSON object of fault switches"})
                wrong = [
                    name
                    for name, value in values.items()
                    if name not in FAULT_FIELDS or type(value) is not int or value < 0
                ]
                if wrong:
                    return json_response(
                        400,
                        {
                            "error": f"unknown or not a non-negative integer: {', '.join(wrong)}",
                            "switches": list(FAULT_FIELDS),
                        },
                    )
                self.engine.set_faults(tx, values)
                return json_response(200, self.engine.faults(tx))
            if route == ("POST", "/_simulator/reset"):
                self.engine.reset_faults(tx)
                return json_response(200, self.engine.faults(tx))
            if route == ("GET", "/_simulator/webhooks"):
                rows = tx.execute(
                    "SELECT id, provider, event_type, object_id, status, attempts, last_error"
                    " FROM webhooks ORDER BY id"
                ).fetchall()
                return json_response(200, {"data": [dict(row) for row in rows]})
        return json_response(404, {"error": f"nothing at {request.method} {request.path}"})


_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class InProcessApp:
    """The simulator for httpx.WSGITransport: a withheld answer becomes the exception httpx
    raises over a real connection (httpx.ReadTimeout for pm_card_timeout, httpx.ReadError
    for a reset); asynchronous outcomes settle when read; no webhook is sent."""

    def __init__(self, app: SimulatorApp):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except Hangup as hangup:
            if hangup.how == "timeout":
                raise httpx.ReadTimeout("timed out (simulator: pm_card_timeout)") from None
            raise httpx.ReadError("[Errno 104] Connection reset by peer (simulator)") from None


_inprocess: dict[SimulatorConfig, InProcessApp] = {}
_inprocess_lock = threading.Lock()


def inprocess_app(**settings: Any) -> InProcessApp:
    """The process-wide in-process simulator for these settings (SimulatorConfig's fields:
    store_path, stripe_api_key, ...; webhook_url is ignored). Pass it to
    httpx.WSGITransport(app=...)."""
    config = SimulatorConfig(**{**settings, "webhook_url": ""})
    with _inprocess_lock:
        if config not in _inprocess:
            _inprocess[config] = InProcessApp(SimulatorApp(config))
        return _inprocess[config]
