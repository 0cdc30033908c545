"""The store and the simulator's isolation: two applications on one file (as the demo's
processes share it) honour a key between them; the simulator imports none of Moneta's
apps."""

import ast
import threading
from pathlib import Path

import httpx
from django.conf import settings

from simulator import SimulatorApp, SimulatorConfig
from tests.simulator.calls import stripe_pay
from tests.simulator.conftest import client


def test_two_applications_on_one_store_charge_once_per_key(config: SimulatorConfig) -> None:
    apps = [SimulatorApp(config), SimulatorApp(config)]
    clients = [client(app, Authorization="Bearer sk_test_moneta") for app in apps]
    answers: dict[str, list[httpx.Response]] = {f"att_{n}": [] for n in range(20)}
    barrier = threading.Barrier(len(answers) * 2)

    def call(attempt: str, which: int) -> None:
        barrier.wait()
        answers[attempt].append(stripe_pay(clients[which], idempotency_key=attempt))

    threads = [
        threading.Thread(target=call, args=(attempt, which))
        for attempt in answers
        for which in (0, 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    charges = clients[0].get("/_simulator/charges").json()["stripe"]
    assert charges == dict.fromkeys(answers, 1)
    for pair in answers.values():
        assert [r.status_code for r in pair] == [200, 200]
        assert pair[0].json() == pair[1].json()
    for app in apps:
        app.store.close()


def test_the_simulator_imports_none_of_monetas_apps() -> None:
    base = Path(settings.BASE_DIR)
    moneta = {"config"} | {
        app for app in settings.INSTALLED_APPS if app != "simulator" and (base / app).is_dir()
    }
    assert {"core", "payments"} <= moneta
    imported = set()
    for path in (base / "simulator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])

    assert "simulator" in imported  # the walk saw the package's own imports
    assert imported & moneta == set()
