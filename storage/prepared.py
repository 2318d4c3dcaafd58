"""Prepared statements: a Core statement compiled once per dialect and run on the driver's cursor
of the caller's transaction, for the statements a hot path runs for every message (inserts;
lookups and updates by `PreparedQuery`).

`Connection.execute` of a cached Core statement still costs about 0.1 ms of Python per
statement (execution context, parameter processing, result set-up, events): on the HL7 order
path that was a third of an order's CPU time, twelve statements for each order. Here the SQL
text, the order of its parameters and each parameter's bind processor (SQLAlchemy's own, as
`Connection.execute` would apply: aware UTC datetimes, JSON, booleans) are worked out once;
running the statement is building one tuple (or dict) and one `cursor.execute`. A lookup's rows
come back as named tuples, each column through its result processor (JSON on SQLite).

What stays as with `Connection.execute`: the statement runs in the connection's transaction
(savepoints included); a driver error is raised as SQLAlchemy's exception (`IntegrityError`,
`OperationalError`: what `Database.transact` and the group commit retry), with no parameters in
its text; `before_cursor_execute` listeners (tests counting statements) see it.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert, Update

from storage.db import driver_error

Params = dict[str, Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # parameter names, in the statement's order
    processors: tuple[Callable[[Any], Any] | None, ...]  # of each name
    positional: bool  # qmark / numeric (SQLite) rather than pyformat (psycopg)
    dialect: str


class PreparedInsert:
    """An INSERT of the given `columns` (every row names each of them), with an optional
    RETURNING of one column."""

    def __init__(self, statement: Insert, columns: Sequence[str]) -> None:
        self._statement, self._columns = statement, list(columns)
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def one(self, conn: Connection, row: Params) -> Any:
        """Insert one row; the RETURNING value (None when the statement returns nothing or the
        insert did nothing)."""
        compiled = self.compiled(conn.dialect)
        args = self.args(compiled, row)
        cursor = _cursor(conn, compiled, args, many=False)
        try:
            if cursor.description is None:
                return None
            fetched = cursor.fetchone()
            return None if fetched is None else fetched[0]
        finally:
            cursor.close()

    def many(self, conn: Connection, rows: Sequence[Params]) -> None:
        """Insert several rows in one executemany (no RETURNING)."""
        if len(rows) == 1:
            self.one(conn, rows[0])  # psycopg's executemany is a pipeline of its own: a sync more
        elif rows:
            compiled = self.compiled(conn.dialect)
            _cursor(conn, compiled, [self.args(compiled, row) for row in rows], many=True).close()

    @staticmethod
    def args(compiled: _Compiled, row: Params) -> Any:
        values = [
            row[name] if process is None else process(row[name])
            for name, process in zip(compiled.names, compiled.processors, strict=True)
        ]
        return tuple(values) if compiled.positional else dict(zip(compiled.names, values, strict=True))

    def compiled(self, dialect: Dialect) -> _Compiled:
        known = self._compiled.get(dialect.name)
        if known is not None:
            return known
        with self._lock:
            made, _ = _compile(self._statement, dialect, self._columns)
            missing = set(made.names) - set(self._columns)
            if missing:  # a column default the statement would fill in: name it in `columns`
                raise ValueError(f"prepared insert: parameters not among the columns: {sorted(missing)}")
            self._compiled[dialect.name] = made
            return made


class PreparedQuery:
    """A SELECT (its rows as named tuples, by the selected columns' keys) or an UPDATE (the
    number of rows it matched) whose parameters are named bindparams; every call names each."""

    def __init__(self, statement: Select[Any] | Update) -> None:
        self._statement = statement
        self._compiled: dict[str, tuple[_Compiled, Any, tuple[Callable[[Any], Any] | None, ...]]] = {}
        self._fixed: dict[str, Params] = {}  # values the statement holds (the 1 of `x + 1`), by dialect
        self._lock = threading.Lock()

    def all(self, conn: Connection, params: Params) -> list[Any]:
        """The rows of a SELECT."""
        compiled, _, _ = self._prepared(conn.dialect)
        cursor = self._run(conn, compiled, params)
        try:
            return self.rows(conn.dialect, cursor.fetchall())
        finally:
            cursor.close()

    def rows(self, dialect: Dialect, rows: Sequence[Any]) -> list[Any]:
        """The driver's rows as this statement's named tuples, through the result processors."""
        _, row_type, results = self._prepared(dialect)
        if any(results):
            return [
                row_type(*(v if p is None else p(v) for v, p in zip(row, results, strict=True)))
                for row in rows
            ]
        return [row_type(*row) for row in rows]

    def first(self, conn: Connection, params: Params) -> Any:
        """The first row of a SELECT, or None."""
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def rowcount(self, conn: Connection, params: Params) -> int:
        """Run an UPDATE: how many rows it matched."""
        compiled, _, _ = self._prepared(conn.dialect)
        cursor = self._run(conn, compiled, params)
        count = int(cursor.rowcount or 0)
        cursor.close()
        return count

    def many(self, conn: Connection, rows: Sequence[Params]) -> None:
        """Run an UPDATE once for each of `rows` (what `insert_all` does off PostgreSQL)."""
        for row in rows:
            self.rowcount(conn, row)

    def compiled(self, dialect: Dialect) -> _Compiled:
        return self._prepared(dialect)[0]

    def args(self, compiled: _Compiled, row: Params) -> Any:
        fixed = self._fixed[compiled.dialect]
        return PreparedInsert.args(compiled, {**fixed, **row} if fixed else row)

    def _run(self, conn: Connection, compiled: _Compiled, params: Params) -> Any:
        return _cursor(conn, compiled, self.args(compiled, params), many=False)

    def _prepared(self, dialect: Dialect) -> tuple[_Compiled, Any, tuple[Callable[[Any], Any] | None, ...]]:
        known = self._compiled.get(dialect.name)
        if known is not None:
            return known
        with self._lock:
            made, binds = _compile(self._statement, dialect)
            self._fixed[dialect.name] = {
                name: binds[name].value for name in made.names if binds[name].value is not None
            }
            columns = list(self._statement.selected_columns) if isinstance(self._statement, Select) else []
            row_type = namedtuple("Row", [str(c.key) for c in columns], rename=True)  # type: ignore[misc]
            results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
            self._compiled[dialect.name] = (made, row_type, results)
            return made, row_type, results


BoundQuery = tuple[PreparedQuery, Params]  # a SELECT and its parameters


def query_all(conn: Connection, lookups: Sequence[BoundQuery]) -> list[list[Any]]:
    """The rows of several SELECTs whose parameters do not depend on each other's results, in
    order. On PostgreSQL they go in one round trip (a psycopg pipeline), not one each."""
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name != "postgresql" or not hasattr(dbapi, "pipeline") or len(lookups) < 2:
        return [query.all(conn, params) for query, params in lookups]
    cursors: list[Any] = []
    sql = "; ".join(query.compiled(conn.dialect).sql for query, _ in lookups)  # for errors only
    errors = dbapi.cursor()
    try:
        with _wrapped(conn, sql, errors), dbapi.pipeline():
            for query, params in lookups:
                compiled = query.compiled(conn.dialect)
                args = query.args(compiled, params)
                cursor = dbapi.cursor()
                cursors.append(cursor)
                _execute(conn, cursor, compiled, args, many=False)
        return [
            query.rows(conn.dialect, cursor.fetchall())
            for (query, _), cursor in zip(lookups, cursors, strict=True)
        ]
    finally:
        for cursor in (errors, *cursors):
            cursor.close()


Writes = list[tuple[PreparedInsert | PreparedQuery, Sequence[Params]]]
"""Writes whose results nobody reads: inserts (no RETURNING) and updates, each with its rows; a
caller may collect them to go with the next `insert_all` (on PostgreSQL: in its round trip)."""


def insert_all(
    conn: Connection, inserts: Sequence[tuple[PreparedInsert | PreparedQuery, Sequence[Params]]]
) -> None:
    """Several writes whose results nobody reads (inserts without RETURNING, updates), in order.
    On PostgreSQL they go in one round trip (a psycopg pipeline: sent together, one sync), not
    one each."""
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name != "postgresql" or not hasattr(dbapi, "pipeline"):
        for prepared, rows in inserts:
            prepared.many(conn, rows)
        return
    cursor = dbapi.cursor()
    sql = "; ".join(prepared.compiled(conn.dialect).sql for prepared, _ in inserts)  # for errors only
    with _wrapped(conn, sql, cursor), dbapi.pipeline():
        for prepared, rows in inserts:
            if not rows:
                continue
            compiled = prepared.compiled(conn.dialect)
            args = [prepared.args(compiled, row) for row in rows]
            many = len(args) > 1  # within the pipeline, executemany is queued with the rest
            _execute(conn, cursor, compiled, args if many else args[0], many=many)
    cursor.close()


def _compile(
    statement: Insert | Select[Any] | Update, dialect: Dialect, columns: Sequence[str] | None = None
) -> tuple[_Compiled, Any]:
    """`statement`'s SQL for `dialect`, its parameter names in order and their bind processors;
    and the compiled statement's binds (their values: what the statement itself holds)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns else None)
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.bind_names.values())
    binds = compiled.binds
    processors = tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    return _Compiled(str(compiled), names, processors, bool(compiled.positional), dialect.name), binds


def _cursor(conn: Connection, compiled: _Compiled, args: Any, *, many: bool) -> Any:
    """A cursor of the caller's transaction that has run `compiled` with `args`."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # a connection in a transaction
    cursor = dbapi.cursor()
    with _wrapped(conn, compiled.sql, cursor):
        _execute(conn, cursor, compiled, args, many=many, within=_with_begin(dbapi, many=many))
    return cursor


def _execute(
    conn: Connection,
    cursor: Any,
    compiled: _Compiled,
    args: Any,
    *,
    many: bool,
    within: AbstractContextManager[Any] | None = None,
) -> None:
    """Run `compiled` on `cursor` (`within` that context: the BEGIN's pipeline), seen first by
    the `before_cursor_execute` listeners."""
    if conn.dispatch.before_cursor_execute:
        conn.dispatch.before_cursor_execute(conn, cursor, compiled.sql, args, None, many)
    with within or nullcontext():
        if many:
            cursor.executemany(compiled.sql, args)
        else:
            cursor.execute(compiled.sql, args)


def _with_begin(dbapi: Any, *, many: bool = False) -> AbstractContextManager[Any]:
    """The transaction's first statement on PostgreSQL: psycopg sends its BEGIN first and waits
    for the answer, a round trip of its own; in a pipeline both go together (the results are
    read when it ends, with the statement's)."""
    info = getattr(dbapi, "info", None)
    if many or info is None or not hasattr(dbapi, "pipeline") or info.transaction_status.name != "IDLE":
        return nullcontext()
    return cast(AbstractContextManager[Any], dbapi.pipeline())


@contextmanager
def _wrapped(conn: Connection, sql: str, cursor: Any) -> Iterator[None]:
    """A driver error as SQLAlchemy's exception, as `Connection.execute` would raise it."""
    error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        dbapi = conn.connection.dbapi_connection
        disconnect = conn.dialect.is_disconnect(exc, dbapi, cursor)
        cursor.close()
        raise driver_error(conn.dialect, sql, exc, disconnect=disconnect) from exc
