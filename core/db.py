"""Database helpers: running a money-moving transaction so that lock conflicts never reach
the caller, and the written-out queries of the API's hottest paths."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections
from django.db.models import Field, Model
from django.utils import timezone
from psycopg import errors as pg_errors

from core.postgresql.base import DatabaseWrapper as PostgresWrapper
from core.postgresql.base import Session

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

M = TypeVar("M", bound=Model)

_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def is_lock_conflict(error: BaseException) -> bool:
    """PostgreSQL aborted the transaction with 40P01 (deadlock) or 40001 (serialization
    failure): running it again may succeed."""
    return isinstance(error, OperationalError) and isinstance(error.__cause__, _RETRYABLE)


def retry_on_conflict(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` again when PostgreSQL aborted its transaction with 40P01 or 40001.

    Locks are taken in one fixed order, so these should not happen; this is the safety net
    PostgreSQL's docs ask for (§13.5). Only the outermost transaction can be retried: inside
    a caller's `atomic` block the error propagates so that the caller's transaction rolls back.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        attempts = settings.MONEY_TRANSACTION_RETRIES
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as error:
                if connection.in_atomic_block or not is_lock_conflict(error) or attempt == attempts:
                    raise
                logger.warning("retrying %r after %s (attempt %d)", func, error, attempt)
                time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter, not crypto
        raise AssertionError("unreachable")

    return wrapper


def database_now() -> datetime:
    """The database server's clock now (`clock_timestamp()`, not the transaction's start).
    Times that order money (entries, holds) come from here, taken under the rows' locks, so
    that they agree with the order of the locks whichever application server took them;
    the demo's SQLite has no such clock and uses this process's."""
    if connection.vendor != "postgresql":
        return timezone.now()
    row = fetch_one("SELECT clock_timestamp()", [])
    assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
    return row[0]


def session_current() -> Session | None:
    """This connection's PostgreSQL server session (core.postgresql), for other sessions to
    ask whether it still lives (`session_alive`); None on the demo's SQLite."""
    database = _database()
    if not isinstance(database, PostgresWrapper):
        return None
    return database.session()


def session_alive(session: Session) -> bool:
    """Whether a PostgreSQL server session still runs, as `pg_stat_activity` shows it: a
    session whose client died (a killed worker) leaves it as soon as PostgreSQL notices,
    at once when it was waiting for the client, within `client_connection_check_interval`
    when it was running a statement (settings.DATABASES). A session whose start time this
    role may not read counts as alive. Ask outside a transaction: PostgreSQL keeps one
    snapshot of the activity per transaction."""
    row = fetch_one(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s"
        " AND (backend_start = %s OR backend_start IS NULL))",
        [session.pid, session.started_at],
    )
    return bool(row and row[0])


def json_as_stored(value: Any) -> Any:
    """`value` (JSON-able) with its objects' keys in the order a JSONField reads them back:
    PostgreSQL's jsonb keeps an object's keys shortest first, then by their bytes; SQLite
    keeps the text as written. For an answer built from what was just written that must
    read exactly as the same row read back."""
    if connection.vendor != "postgresql":
        return value
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda item: (len(item[0].encode()), item[0].encode()))
        return {key: json_as_stored(item) for key, item in ordered}
    if isinstance(value, list):
        return [json_as_stored(item) for item in value]
    return value


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of a query, for the few hot paths where building the query with the
    ORM would cost more than running it."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _database() -> Any:
    """This thread's connection itself: `django.db.connection` is a proxy that looks it up
    again on every attribute, and field adaptation reads several per value."""
    return connections[DEFAULT_DB_ALIAS]


@functools.lru_cache(maxsize=64)
def _row_reader(
    model: type[Model], field_names: tuple[str, ...]
) -> tuple[list[str], list[tuple[int, Any, list[Any]]]]:
    """For `instance_from_row`: the names in the model's field order, and for each the
    position of its value in the row, its column and the converters the ORM would apply
    (none on PostgreSQL for the fields we read; SQLite's datetimes need one)."""
    position = {name: index for index, name in enumerate(field_names)}
    fields = [field for field in model._meta.concrete_fields if field.attname in position]
    readers = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        readers.append((position[field.attname], column, converters))
    return [field.attname for field in fields], readers


def instance_from_row(model: type[M], field_names: Sequence[str], values: Sequence[Any]) -> M:
    """A model instance from some of its columns (`values` by attname, in any order), as
    the ORM itself would build it; the other fields load on first access."""
    if len(field_names) != len(values):
        raise ValueError(f"{len(field_names)} field names for {len(values)} values")
    names, readers = _row_reader(model, tuple(field_names))
    db = _database()
    converted = []
    for index, column, converters in readers:
        value = values[index]
        for converter in converters:
            value = converter(value, column, db)
        converted.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, names, converted)


@functools.lru_cache(maxsize=64)
def _insert_sql(
    model: type[Model], rows: int, ignore_conflicts: bool
) -> tuple[str, tuple[Field[Any, Any], ...]]:
    opts = model._meta
    fields = tuple(field for field in opts.concrete_fields if field is not opts.auto_field)
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Names and placeholders only.
    sql = (
        f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(f.column) for f in fields)})"  # noqa: S608
        f" VALUES {', '.join([row] * rows)}"
        f"{' ON CONFLICT DO NOTHING' if ignore_conflicts else ''} RETURNING {quote(opts.pk.column)}"
    )
    return sql, fields


def insert_rows(rows: Sequence[M], *, ignore_conflicts: bool = False) -> bool:
    """Insert unsaved instances of one model in one statement and set their primary keys:
    `bulk_create`, for the money path, where building the query with the ORM costs more
    than PostgreSQL spends running it (docs/benchmarks.md). Like `bulk_create`, it sends no
    signals; unlike it, it does not split the rows into batches: it is for the few rows of
    one operation (a statement takes at most 65,535 parameters). An `auto_now_add` time
    already set on a row is kept.

    With `ignore_conflicts`, rows that would break a unique constraint are skipped
    (`ON CONFLICT DO NOTHING`); then the result says whether every row was inserted, and
    only in that case are the primary keys set."""
    if not rows:
        return True
    sql, fields = _insert_sql(type(rows[0]), len(rows), ignore_conflicts)
    with connection.cursor() as cursor:
        cursor.execute(sql, _insert_params(fields, rows))
        returned = cursor.fetchall()
    if len(returned) != len(rows):
        return False
    _mark_saved(rows, [pk for (pk,) in returned])
    return True


def insert_rows_together(rows: Sequence[Model]) -> None:
    """Insert unsaved instances of several models (a transfer, its event, its audit rows)
    and set their primary keys: on PostgreSQL in one statement, a data-modifying CTE per
    model, where `insert_rows` per model would cost a round trip each; elsewhere (the
    demo's SQLite) one `insert_rows` per model. A row may point only at rows saved before."""
    groups: dict[type[Model], list[Model]] = {}
    for row in rows:
        groups.setdefault(type(row), []).append(row)
    if connection.vendor != "postgresql" or len(groups) < 2:
        for group in groups.values():
            insert_rows(group)
        return
    ctes, selects, params = [], [], []
    for index, (model, group) in enumerate(groups.items()):
        sql, fields = _insert_sql(model, len(group), False)
        ctes.append(f"i{index} AS ({sql})")
        pk = connection.ops.quote_name(model._meta.pk.column)
        selects.append(f"SELECT {index}, {pk} FROM i{index}")  # noqa: S608 - names only
        params += _insert_params(fields, group)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} {' UNION ALL '.join(selects)}", params)
        returned = cursor.fetchall()
    pks: dict[int, list[Any]] = {index: [] for index in range(len(groups))}
    for index, pk in returned:
        pks[index].append(pk)
    for index, group in enumerate(groups.values()):
        _mark_saved(group, pks[index])


def _insert_params(fields: Sequence[Field[Any, Any]], rows: Sequence[Model]) -> list[Any]:
    db = _database()
    return [
        field.get_db_prep_save(_value_to_insert(field, row), db) for row in rows for field in fields
    ]


def _value_to_insert(field: Field[Any, Any], row: Model) -> Any:
    """The field's value as `save()` would insert it, but an `auto_now_add` time the caller
    set already is kept: a payload built before the insert (an event's) shows the stored
    time."""
    if getattr(field, "auto_now_add", False) and getattr(row, field.attname) is not None:
        return getattr(row, field.attname)
    return field.pre_save(row, True)


def _mark_saved(rows: Sequence[Model], pks: Sequence[Any]) -> None:
    for row, pk in zip(rows, pks, strict=True):
        row.pk = pk
        row._state.adding = False
        row._state.db = DEFAULT_DB_ALIAS


def _quoted_columns(fields: Sequence[Any]) -> list[str]:
    return [connection.ops.quote_name(field.column) for field in fields]


@functools.lru_cache(maxsize=64)
def _select_sql(
    model: type[Model], names: tuple[str, ...], one_of: str | None = None, count: int = 0
) -> tuple[str, tuple[str, ...]]:
    """Every column of the rows whose `names` equal parameters (and, with `one_of`, whose
    `one_of` is one of `count` more)."""
    opts = model._meta
    equal = _quoted_columns([opts.get_field(name) for name in names])
    conditions = [f"{column} = %s" for column in equal]
    if one_of is not None:
        (column,) = _quoted_columns([opts.get_field(one_of)])
        conditions.append(f"{column} IN ({', '.join(['%s'] * count)})")
    sql = (
        f"SELECT {', '.join(_quoted_columns(opts.concrete_fields))}"  # noqa: S608 - names only
        f" FROM {connection.ops.quote_name(opts.db_table)}"
        f" WHERE {' AND '.join(conditions)}"
    )
    return sql, tuple(field.attname for field in opts.concrete_fields)


def _db_values(model: type[Model], values: dict[str, Any]) -> list[Any]:
    db = _database()
    return [
        model._meta.get_field(name).get_db_prep_value(value, db, prepared=False)  # type: ignore[union-attr]
        for name, value in values.items()
    ]


def select_one(model: type[M], **equal: Any) -> M | None:
    """The instance whose fields (by name or attname, e.g. `merchant_id`) equal these
    non-null values, or None; for lookups by a unique key, where building the query with the ORM
    would cost more than running it."""
    sql, columns = _select_sql(model, tuple(equal))
    row = fetch_one(sql, _db_values(model, equal))
    return None if row is None else instance_from_row(model, columns, row)


def select_many(model: type[M], key: str, values: Sequence[Any], **equal: Any) -> dict[Any, M]:
    """The instances whose `key` (a unique field) is one of `values` and whose other
    fields equal `equal`, by their `key`: `select_one` for several keys in one query."""
    unique = list(dict.fromkeys(values))
    if not unique:
        return {}
    sql, columns = _select_sql(model, tuple(equal), key, len(unique))
    field = model._meta.get_field(key)
    db = _database()
    params = _db_values(model, equal) + [
        field.get_db_prep_value(value, db, prepared=False)  # type: ignore[union-attr]
        for value in unique
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = (instance_from_row(model, columns, row) for row in rows)
    return {getattr(instance, key): instance for instance in found}


@functools.lru_cache(maxsize=64)
def _update_sql(model: type[Model], names: tuple[str, ...], where: tuple[str, ...]) -> str:
    opts = model._meta
    assignments = _quoted_columns([opts.get_field(name) for name in names])
    conditions = _quoted_columns([opts.get_field(name) for name in where])
    return (
        f"UPDATE {connection.ops.quote_name(opts.db_table)}"  # noqa: S608 - names only
        f" SET {', '.join(f'{column} = %s' for column in assignments)}"
        f" WHERE {' AND '.join(f'{column} = %s' for column in conditions)}"
    )


def update_rows(model: type[Model], where: dict[str, Any], **values: Any) -> int:
    """`model.objects.filter(**where).update(**values)` for equality filters on non-null
    values, as one written-out statement; the number of rows updated."""
    sql = _update_sql(model, tuple(values), tuple(where))
    with connection.cursor() as cursor:
        cursor.execute(sql, _db_values(model, values) + _db_values(model, where))
        return cursor.rowcount
