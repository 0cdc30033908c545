"""Django's PostgreSQL backend with a health check that costs no round trip.

With persistent connections and `CONN_HEALTH_CHECKS`, Django checks a connection before
its first use in every request, and its check is a `SELECT 1`: one more round trip than
the request itself needs, which on the API's cheapest requests is a quarter of their cost
(docs/benchmarks.md). An idle connection has nothing to read, so this check asks the
socket instead: when it is readable, the server has closed the connection (a restart,
`pg_terminate_backend`, an idle timeout) or sent something no query asked for, and the
connection is dropped and replaced, as after a failed `SELECT 1`.

It also knows which server session (backend) a connection is, for another session to ask
whether it still lives (`session`, core.db.session_alive).
"""

import select
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.backends.postgresql import base
from psycopg import pq

_BROKEN = {pq.TransactionStatus.INERROR, pq.TransactionStatus.UNKNOWN}


@dataclass(frozen=True)
class Session:
    """A PostgreSQL server session: its backend's pid and start time, which together name
    it (the operating system reuses pids)."""

    pid: int
    started_at: datetime


class DatabaseWrapper(base.DatabaseWrapper):
    # (the connection it was read on, its session): read once per connection.
    _session: tuple[Any, Session] | None = None

    def session(self) -> Session:
        """This connection's server session; one query per connection, the first time."""
        self.ensure_connection()
        raw = self.connection
        if self._session is None or self._session[0] is not raw:
            with self.cursor() as cursor:
                cursor.execute(
                    "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                )
                pid, started_at = cursor.fetchone()
            self._session = (raw, Session(pid, started_at))
        return self._session[1]

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.pgconn.status != pq.ConnStatus.OK:
            return False
        if connection.info.transaction_status in _BROKEN:
            return False
        # poll(), not select(): select() cannot watch a descriptor above 1023.
        poller = select.poll()
        try:
            poller.register(connection.fileno(), select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False
