"""The simulator over real HTTP: the official stripe SDK against it, restarts on the same
store, concurrent calls, the management command."""

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import stripe
from django.conf import settings
from django.core.management import CommandError, call_command

from simulator.config import DEFAULT_STRIPE_API_KEY, SimulatorConfig
from tests.simulator.calls import stripe_pay
from tests.simulator.servers import running


def stripe_sdk(base_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        DEFAULT_STRIPE_API_KEY, base_addresses={"api": base_url}, max_network_retries=0
    )


def http_client(base_url: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {DEFAULT_STRIPE_API_KEY}"},
        trust_env=False,
        timeout=5,
    )


def test_the_stripe_sdk_speaks_to_it(config: SimulatorConfig) -> None:
    with running(config) as url:
        sdk = stripe_sdk(url).v1
        intent = sdk.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "eur",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "capture_method": "manual",
                "metadata": {"moneta_attempt": "att_sdk"},
            },
            options={"idempotency_key": "att_sdk"},
        )
        captured = sdk.payment_intents.capture(
            intent.id, params={"amount_to_capture": 1000}, options={"idempotency_key": "cap_sdk"}
        )
        found = sdk.payment_intents.search(params={"query": "metadata['moneta_attempt']:'att_sdk'"})
        with pytest.raises(stripe.CardError) as declined:
            sdk.payment_intents.create(
                params={
                    "amount": 1500,
                    "currency": "eur",
                    "confirm": True,
                    "payment_method": "pm_card_insufficient_funds",
                },
                options={"idempotency_key": "att_sdk_2"},
            )
        with pytest.raises(stripe.IdempotencyError):
            sdk.payment_intents.create(
                params={
                    "amount": 1,
                    "currency": "eur",
                    "payment_method": "pm_card_visa",
                    "confirm": True,
                },
                options={"idempotency_key": "att_sdk"},
            )

    assert intent.status == "requires_capture"
    assert (captured.status, captured.amount_received) == ("succeeded", 1000)
    assert [p.id for p in found.data] == [intent.id]
    assert declined.value.code == "card_declined"
    assert declined.value.error is not None
    assert declined.value.error.decline_code == "insufficient_funds"


def test_state_survives_a_restart(config: SimulatorConfig) -> None:
    with running(config) as url, http_client(url) as client:
        first = stripe_pay(client, idempotency_key="att_restart")
        intent = first.json()

    with running(config) as url, http_client(url) as client:
        retrieved = client.get(f"/v1/payment_intents/{intent['id']}")
        replay = stripe_pay(client, idempotency_key="att_restart")
        mismatch = stripe_pay(client, idempotency_key="att_restart", amount=1)
        charges = client.get("/_simulator/charges").json()

    assert retrieved.json() == intent
    assert (replay.status_code, replay.json()) == (200, intent)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert mismatch.json()["error"]["type"] == "idempotency_error"
    assert charges["stripe"] == {"att_restart": 1}


def test_fifty_concurrent_calls_charge_once_per_key(config: SimulatorConfig) -> None:
    """25 keys, each sent twice at the same time by 50 threads: one charge per key, and both
    answers for a key are the same PaymentIntent."""
    answers: dict[str, list[str]] = {f"att_c{n}": [] for n in range(25)}
    barrier = threading.Barrier(50)

    with running(config) as url, http_client(url) as client:

        def call(attempt: str) -> None:
            barrier.wait()
            answers[attempt].append(stripe_pay(client, idempotency_key=attempt).json()["id"])

        threads = [threading.Thread(target=call, args=(k,)) for k in answers for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        charges = client.get("/_simulator/charges").json()["stripe"]

    assert charges == dict.fromkeys(answers, 1)
    assert all(len(ids) == 2 and ids[0] == ids[1] for ids in answers.values())


def test_the_command_serves_it(tmp_path: Path) -> None:
    from tests.servers import free_port

    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own manage.py with fixed arguments
        [
            sys.executable,
            "manage.py",
            "run_provider_simulator",
            "--port",
            str(port),
            "--store",
            str(tmp_path / "command.sqlite3"),
            "--webhook-url",
            "",
        ],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert f"listening on http://127.0.0.1:{port}/" in line, line
        with http_client(f"http://127.0.0.1:{port}") as client:
            response = stripe_pay(client)
        assert (response.status_code, response.json()["status"]) == (200, "succeeded")
    finally:
        process.terminate()
        process.wait(10)


def test_the_default_config_matches_the_documented_defaults() -> None:
    defaults = SimulatorConfig()
    documented = (Path(settings.BASE_DIR) / "docs" / "providers.md").read_text()

    for field in dataclasses.fields(defaults):
        if field.name.endswith(("_key", "_secret", "_account")):
            assert str(getattr(defaults, field.name)) in documented, field.name


def test_drop_after_commit_resets_the_connection(config: SimulatorConfig) -> None:
    with running(config) as url, http_client(url) as client:
        client.post("/_simulator/faults", json={"drop_after_commit": 1})
        with pytest.raises(httpx.ReadError):
            stripe_pay(client, idempotency_key="att_drop")
        replay = stripe_pay(client, idempotency_key="att_drop")
        charges = client.get("/_simulator/charges").json()["stripe"]

    assert replay.headers["Idempotent-Replayed"] == "true"
    assert charges == {"att_drop": 1}


def test_timeout_holds_the_answer_then_closes(config: SimulatorConfig) -> None:
    held = dataclasses.replace(config, timeout_seconds=0.5)
    with running(held) as url, http_client(url) as client:
        client.timeout = httpx.Timeout(0.3)
        with pytest.raises(httpx.ReadTimeout):
            stripe_pay(client, "pm_card_timeout", idempotency_key="att_t1")
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):  # closed, unanswered, after 0.5 s
            client.post(
                "/v1/payment_intents",
                data={
                    "amount": "10",
                    "currency": "eur",
                    "payment_method": "pm_card_timeout",
                    "confirm": "true",
                },
                headers={"Idempotency-Key": "att_t2"},
                timeout=5,
            )
        waited = time.monotonic() - started
        replay = stripe_pay(client, "pm_card_timeout", idempotency_key="att_t1")
        charges = client.get("/_simulator/charges").json()["stripe"]

    assert 0.5 <= waited < 2
    assert replay.json()["status"] == "succeeded"
    assert charges == {"att_t1": 1, "att_t2": 1}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Length": "abc"}, 413),
        ({"Content-Length": str(2**30)}, 413),
        ({"Transfer-Encoding": "chunked"}, 411),
    ],
)
def test_a_body_it_cannot_frame_is_refused(
    config: SimulatorConfig, headers: dict[str, str], status: int
) -> None:
    with running(config) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            lines = ["POST /v1/payment_intents HTTP/1.1", f"Host: {host}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            answer = connection.recv(1000).decode()

    assert answer.startswith(f"HTTP/1.1 {status} "), answer


def test_a_bug_is_a_500_and_the_server_goes_on(
    config: SimulatorConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.engine import Engine

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    with running(config) as url, http_client(url) as client:
        monkeypatch.setattr(Engine, "create_payout", broken)
        failed = client.post(
            "/v1/payouts",
            data={"amount": "5", "currency": "eur", "destination": "ba_ok"},
            headers={"Idempotency-Key": "k_bug"},
        )
        monkeypatch.undo()
        retried = client.post(
            "/v1/payouts",
            data={"amount": "5", "currency": "eur", "destination": "ba_ok"},
            headers={"Idempotency-Key": "k_bug"},
        )

    assert failed.status_code == 500
    assert (retried.status_code, retried.json()["status"]) == (200, "pending")


@pytest.mark.parametrize(
    "arguments",
    [
        ["--port", "70000"],
        ["--port", "-1"],
        ["--port", "http"],
        ["--port", "0", "--async-seconds", "-5"],
        ["--port", "0", "--timeout-seconds", "nan"],
    ],
    ids=["port too large", "negative port", "port not a number", "negative", "nan"],
)
def test_the_command_refuses_bad_arguments(arguments: list[str]) -> None:
    with pytest.raises(CommandError, match=r"invalid (port|seconds) value"):
        call_command("run_provider_simulator", *arguments)


def test_the_command_says_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}"):
            call_command(
                "run_provider_simulator",
                "--port",
                str(port),
                "--store",
                str(tmp_path / "simulator.sqlite3"),
            )
