"""Raw SQL in migrations that only PostgreSQL runs (the SQLite demo has no triggers)."""

from collections.abc import Callable
from typing import Any


def on_postgresql(sql: str) -> Callable[[Any, Any], None]:
    """A RunPython operation's function that executes `sql` on PostgreSQL only."""

    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # None: the SQL's % are not placeholders

    return run
