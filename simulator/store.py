"""The simulator's state in one SQLite file (WAL). One connection per process, behind a lock:
a ThreadingHTTPServer's threads take turns (each transaction is a few statements), and the
processes that share the file in-process (web workers, Celery workers) take turns through
SQLite's own write lock (BEGIN IMMEDIATE, with a busy timeout)."""

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    attempt TEXT NOT NULL,            -- Stripe metadata[moneta_attempt], Adyen `reference`
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,           -- upper case
    payment_method TEXT NOT NULL,
    capture_method TEXT NOT NULL,     -- automatic | manual
    -- processing | requires_capture | succeeded | canceled | declined
    status TEXT NOT NULL,
    -- card_declined | insufficient_funds | expired_card | fraudulent; '' when none
    decline_reason TEXT NOT NULL,
    amount_capturable INTEGER NOT NULL,
    amount_received INTEGER NOT NULL,
    amount_refunded INTEGER NOT NULL, -- refunds pending or succeeded
    metadata TEXT NOT NULL,           -- JSON object
    created REAL NOT NULL,
    settle_at REAL,                   -- processing: when the asynchronous outcome is due
    captured_at REAL,
    canceled_at REAL
);
CREATE INDEX IF NOT EXISTS payments_attempt ON payments (provider, attempt);
CREATE INDEX IF NOT EXISTS payments_captured ON payments (provider, captured_at);
CREATE INDEX IF NOT EXISTS payments_due ON payments (settle_at) WHERE status = 'processing';

CREATE TABLE IF NOT EXISTS modifications (  -- captures and cancels (Adyen names them)
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    type TEXT NOT NULL,               -- capture | cancel
    amount INTEGER NOT NULL,
    reference TEXT NOT NULL,
    created REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    attempt TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,             -- pending | succeeded | failed
    outcome TEXT NOT NULL,            -- what it settles to
    metadata TEXT NOT NULL,
    created REAL NOT NULL,
    settle_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_attempt ON refunds (provider, attempt);
CREATE INDEX IF NOT EXISTS refunds_created ON refunds (provider, created);
CREATE INDEX IF NOT EXISTS refunds_due ON refunds (settle_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS payouts (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    attempt TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,             -- pending | paid | failed
    outcome TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created REAL NOT NULL,
    settle_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS payouts_attempt ON payouts (provider, attempt);
CREATE INDEX IF NOT EXISTS payouts_created ON payouts (provider, created);
CREATE INDEX IF NOT EXISTS payouts_due ON payouts (settle_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS idempotency (  -- the first answer per key, replayed
    provider TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    headers TEXT NOT NULL,            -- JSON list of [name, value]
    body BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (provider, key)
);

CREATE TABLE IF NOT EXISTS flaky_seen (  -- pm_card_flaky: whose first call already failed
    provider TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (provider, key)
);

CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    latency_ms INTEGER NOT NULL DEFAULT 0,
    drop_after_commit INTEGER NOT NULL DEFAULT 0,
    unavailable INTEGER NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL DEFAULT 0,
    retry_after INTEGER NOT NULL DEFAULT 1,
    invalid_json INTEGER NOT NULL DEFAULT 0,
    refund_failure INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO faults (id) VALUES (1);

CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    event_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    body BLOB NOT NULL,
    status TEXT NOT NULL,             -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks (next_try_at) WHERE status = 'pending';
"""


class Store:
    """The SQLite file. `transaction()` is the only way to write: the lock, BEGIN IMMEDIATE,
    COMMIT (or ROLLBACK on an exception); `reading()` for a lone read."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._connect().executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # A connection is never used across fork(): a web server that forks after loading
        # the app gets a connection of its own in each worker.
        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """For one read that needs no transaction (it takes no write lock)."""
        with self._lock:
            yield self._connect()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
