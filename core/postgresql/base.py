"""Django's PostgreSQL backend with a health check that costs no round trip.

With persistent connections and `CONN_HEALTH_CHECKS`, Django checks a connection before
its first use in every request, and its check is a `SELECT 1`: one more round trip than
the request itself needs, which on the API's cheapest requests is a quarter of their cost
(docs/benchmarks.md). An idle connection has nothing to read, so this check asks the
socket instead: when it is readable, the server has closed the connection (a restart,
`pg_terminate_backend`, an idle timeout) or sent something no query asked for, and the
connection is dropped and replaced, as after a failed `SELECT 1`.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq

_BROKEN = {pq.TransactionStatus.INERROR, pq.TransactionStatus.UNKNOWN}


class DatabaseWrapper(base.DatabaseWrapper):
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
