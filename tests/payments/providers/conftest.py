"""The provider simulator for the adapters' tests, both ways the adapters reach it:
in-process (its WSGI application through httpx.WSGITransport, a store per test) and over
real HTTP (its server on a free port in a thread of this process, one store for the
session); and "the outside world": a tiny HTTP server that answers as a broken provider
would (another amount, a redirect, an oversized body, a malformed report)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from payments.providers import transport
from payments.providers.registry import PROVIDERS, adapter_get, adapters_reset
from simulator.config import SimulatorConfig
from simulator.server import SimulatorServer
from tests.servers import free_port

READ_TIMEOUT = 0.5  # the adapters' read timeout in these tests
HOLD_SECONDS = 1.5  # how long the HTTP simulator holds pm_card_timeout's answer
ASYNC_SECONDS = 0.2  # when the HTTP simulator settles pm_card_async, refunds, payouts


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Received:
    """The webhooks the HTTP simulator delivered: (path, headers, body)."""

    calls: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def wait_for(
        self, path: str, needle: str, timeout: float = 10.0
    ) -> tuple[dict[str, str], bytes]:
        """The first webhook to `path` whose body mentions `needle`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call_path, headers, body in list(self.calls):
                if call_path == path and needle.encode() in body:
                    return headers, body
            time.sleep(0.05)
        raise AssertionError(f"no webhook to {path} about {needle} in {timeout} s")


def _serve(app: Callable[..., Any]) -> tuple[WSGIServer, str]:
    server = make_server("127.0.0.1", free_port(), app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="session")
def webhooks_received() -> Iterator[Received]:
    """A receiver for the HTTP simulator's webhooks (standing for Moneta's endpoint)."""
    received = Received()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        received.calls.append((environ["PATH_INFO"], headers, environ["wsgi.input"].read(length)))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"[accepted]"]

    server, url = _serve(app)
    received.url = url  # type: ignore[attr-defined]
    yield received
    server.shutdown()


@pytest.fixture(scope="session")
def simulator_url(
    tmp_path_factory: pytest.TempPathFactory, webhooks_received: Received
) -> Iterator[str]:
    """The simulator over HTTP for the whole session, with Moneta's default credentials."""
    config = SimulatorConfig(
        store_path=str(tmp_path_factory.mktemp("simulator") / "store.sqlite3"),
        timeout_seconds=HOLD_SECONDS,
        async_seconds=ASYNC_SECONDS,
        webhook_url=webhooks_received.url,  # type: ignore[attr-defined]
    )
    server = SimulatorServer(config, "127.0.0.1", free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Simulator:
    """The simulator the adapters talk to in a test, and its admin (/_simulator/)."""

    mode: str  # in_process | http
    admin: httpx.Client

    def faults(self, **switches: int) -> None:
        self.admin.post("/_simulator/faults", json=switches).raise_for_status()

    def faults_now(self) -> dict[str, int]:
        answer: dict[str, int] = self.admin.get("/_simulator/faults").json()
        return answer

    def charges(self, provider: str, key: str) -> int:
        """How many charges the idempotency key `key` made at `provider`."""
        counts = self.admin.get("/_simulator/charges").json()
        return int(counts[provider].get(key, 0))


@pytest.fixture(autouse=True)
def provider_settings(settings: Any, tmp_path: Any) -> Iterator[Any]:
    """Fast settings for every test; adapters and breakers made from them (in memory)."""
    settings.PROVIDER_SIMULATOR_URL = ""
    settings.PROVIDER_SIMULATOR_STORE = str(tmp_path / "simulator.sqlite3")
    settings.PROVIDER_CIRCUIT_STORAGE = "memory"
    settings.PROVIDER_MAX_NETWORK_RETRIES = 2
    settings.PROVIDER_RETRY_BASE_DELAY_SECONDS = 0.01
    settings.PROVIDER_RETRY_MAX_DELAY_SECONDS = 0.05
    for provider in PROVIDERS:
        setattr(settings, f"{provider.upper()}_CONNECT_TIMEOUT_SECONDS", READ_TIMEOUT)
        setattr(settings, f"{provider.upper()}_READ_TIMEOUT_SECONDS", READ_TIMEOUT)
    yield settings
    adapters_reset()


@pytest.fixture(params=["in_process", "http"])
def simulator(request: pytest.FixtureRequest, settings: Any) -> Iterator[Simulator]:
    """The simulator, in-process (a store of this test's own) or over HTTP (faults reset
    after the test)."""
    if request.param == "http":
        url = request.getfixturevalue("simulator_url")
        settings.PROVIDER_SIMULATOR_URL = url
        admin = httpx.Client(base_url=url, trust_env=False, timeout=5)
    else:
        admin = httpx.Client(
            base_url=transport.IN_PROCESS_BASE_URL,
            transport=httpx.WSGITransport(app=transport.simulator_in_process()),
        )
    with admin:
        admin.post("/_simulator/reset").raise_for_status()
        yield Simulator(request.param, admin)
        admin.post("/_simulator/reset").raise_for_status()


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def adapter(provider: str, simulator: Simulator) -> Any:
    """The adapter of `provider`, talking to `simulator`."""
    return adapter_get(provider)


@dataclass
class OutsideWorld:
    """A provider that answers whatever the test sets: `answer(method, path, query, body)`
    returns (status, headers, body)."""

    url: str
    answer: Callable[[str, str, str, bytes], tuple[int, list[tuple[str, str]], Any]] = (
        lambda method, path, query, body: (404, [], b"{}")
    )
    requests: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture(scope="session")
def _outside_world() -> Iterator[OutsideWorld]:
    world = OutsideWorld(url="")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        world.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        status, headers, answer = world.answer(
            environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", ""), body
        )
        start_response(f"{status} Whatever", headers)
        return [answer] if isinstance(answer, bytes) else answer  # chunks: no length

    server, world.url = _serve(app)
    yield world
    server.shutdown()


@pytest.fixture
def outside_world(_outside_world: OutsideWorld, settings: Any) -> OutsideWorld:
    """The broken provider, which the adapters now talk to."""
    settings.PROVIDER_SIMULATOR_URL = _outside_world.url
    _outside_world.requests.clear()
    return _outside_world


def json_answer(
    data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps(data).encode()
    return status, [("Content-Type", "application/json"), *(headers or [])], body
