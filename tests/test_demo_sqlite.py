"""The demo's database is SQLite (bin/demo): the API's written-out queries must work there
too. Runs the demo's own steps in a subprocess, on a fresh SQLite file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.slow

# Runs inside `manage.py shell` on the demo database: a read, a transfer, its replay and
# a decline through the API, then the ledger's invariants.
SCRIPT = """
import json
from django.core.management import call_command
from django.test import Client
from accounts.api_keys import api_key_create
from accounts.models import Account, Merchant

shop = Merchant.objects.get(name="Demo Shop")
_, secret = api_key_create(merchant=shop, name="sqlite test")
client = Client(HTTP_AUTHORIZATION="Bearer " + secret, HTTP_HOST="127.0.0.1")
source, destination = Account.objects.filter(
    merchant=shop, kind="wallet", currency="USD", status="active"
).order_by("pk")[:2]
path = f"/api/v1/accounts/{source.public_id}/balance"
before = client.get(path).json()
body = {"source_account": source.public_id, "destination_account": destination.public_id,
        "amount": 5, "currency": "USD"}
first = client.post("/api/v1/transfers", body, content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY="sqlite-1")
again = client.post("/api/v1/transfers", body, content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY="sqlite-1")
declined = client.post("/api/v1/transfers", {**body, "amount": 10**12},
                       content_type="application/json")
after = client.get(path).json()
missing = client.get("/api/v1/accounts/acct_missing/balance")
malformed = client.get("/api/v1/accounts/acct%00x/balance")  # a path no route takes
# A card payment: eager Celery and the in-process simulator answer before the response.
paid = client.post("/api/v1/payments", {"amount": 1000, "currency": "usd",
                   "destination_account": destination.public_id,
                   "payment_method": "pm_card_visa"}, content_type="application/json")
call_command("reconcile_ledger")
print(json.dumps({
    "before": before, "after": after,
    "first": [first.status_code, first.content.decode()],
    "again": [again.status_code, again.content.decode(), again.get("Idempotent-Replayed")],
    "declined": declined.status_code, "missing": missing.status_code,
    "malformed": [malformed.status_code, malformed["Content-Type"]],
    "paid": [paid.status_code, paid.json().get("status"), paid.json().get("net")],
}))
"""


def _manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_demo_api_moves_money_on_sqlite(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "DEBUG": "true",  # as bin/demo runs
        "LOG_FORMAT": "text",
        "PROVIDER_SIMULATOR_STORE": str(tmp_path / "simulator.sqlite3"),
    }
    env.pop("REDIS_URL", None)
    _manage("migrate", "--no-input", "-v0", env=env)
    _manage("seed_demo", env=env)
    outcome = json.loads(_manage("shell", "-c", SCRIPT, env=env).strip().splitlines()[-1])

    assert outcome["first"][0] == 201
    assert outcome["again"] == [*outcome["first"], "true"]
    assert outcome["declined"] == 402
    assert outcome["missing"] == 404
    assert outcome["malformed"] == [404, "application/json"]  # the demo runs with DEBUG on
    assert outcome["after"]["balance"] == outcome["before"]["balance"] - 5
    # The demo's pricing in USD (seed_demo): 2.9 % + 0.30, so 10.00 nets 9.41.
    assert outcome["paid"] == [202, "succeeded", 941]
