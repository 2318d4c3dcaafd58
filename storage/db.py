"""Engine and sessions: SQLite (WAL) by default, PostgreSQL by URL.

Durability: SQLite runs with `synchronous=FULL` (a committed transaction survives
power loss; WAL with NORMAL does not) and writers take the write lock up front
(`BEGIN IMMEDIATE`) so that two writers never deadlock on a lock upgrade.
PostgreSQL runs READ COMMITTED; writers lock rows in one order (patient, study,
series, instance) and `Database.write` retries what races lose.

Reads never write: `Database.read()` opens a read-only transaction, so a write inside it fails
instead of happening. On PostgreSQL it is `READ ONLY` and `REPEATABLE READ` (one snapshot for the
whole read: a search's count, page and includes, or a study's index rows and its stored version,
agree with each other; a read-only transaction never fails serialization); it can run on a
read-only replica. On SQLite a read is a deferred `BEGIN` (a WAL snapshot) with
`PRAGMA query_only` on, switched off again when the connection next begins a write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import Select

from storage.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_READONLY = "facade_readonly"
_PEEK = "facade_peek"
_QUERY_ONLY = "facade_query_only"  # a pool record's note: PRAGMA query_only is on (unknown: may be)
_RETRYABLE_PG = {"40001", "40P01"}  # serialization failure, deadlock detected
_RESTING_SINCE = "facade_resting_since"  # a pool record's note: when it was given back
PING_AFTER = 1.0  # seconds in the pool after which a PostgreSQL connection is checked when handed out


def make_engine(url: str, *, echo: bool = False, ping_after: float = PING_AFTER) -> Engine:
    """An engine for `url` with the project's connection settings (`ping_after`: PostgreSQL,
    see `_ping_after_idle`)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=20,
            max_overflow=20,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20)
    _configure_postgresql(engine)
    _ping_after_idle(engine, ping_after)
    return engine


def _ping_after_idle(engine: Engine, ping_after: float) -> None:
    """A pooled PostgreSQL connection is checked (one `SELECT 1`) when it is handed out after
    resting in the pool for `ping_after` seconds or more, and replaced when the check fails (a
    server restarted, a connection dropped while idle): SQLAlchemy's `pool_pre_ping`, except
    for a connection given back moments ago, as the hot paths' are (an HL7 order's transaction
    or a token check would otherwise wait for one more round trip every time). A connection
    that fails within that moment is replaced when its statement fails (the pool is
    invalidated on a disconnect; the caller gets Unavailable, as during an outage)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RESTING_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_RESTING_SINCE, None)
        if since is not None and time.monotonic() - since < ping_after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)  # what pool_pre_ping runs
        except engine.dialect.loaded_dbapi.Error as exc:  # the pool tries another connection
            raise DisconnectionError("connection failed its check") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=60000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The pool serves readers and writers alike, so every transaction sets query_only itself.
        if conn.get_execution_options().get(_PEEK):
            return  # autocommit: each statement its own
        # The setting stays with the SQLite connection, and its pool record remembers it, so a
        # connection's writes after writes skip the statement (one round trip of each write).
        info = conn.connection.info
        if conn.get_execution_options().get(_READONLY):
            conn.exec_driver_sql("BEGIN")
            if not info.get(_QUERY_ONLY):
                conn.exec_driver_sql("PRAGMA query_only = ON")
                info[_QUERY_ONLY] = True
        else:
            if info.get(_QUERY_ONLY, True):
                conn.exec_driver_sql("PRAGMA query_only = OFF")
                info[_QUERY_ONLY] = False
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_PEEK):
            return  # autocommit: each statement its own
        if conn.get_execution_options().get(_READONLY):
            # the first statement of the transaction, so that it applies to all of it
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


class Database:
    """Session factories: `write()` for a transaction that changes data, `read()` for one that doesn't."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = sessionmaker(engine, expire_on_commit=False)
        self._read_engine = engine.execution_options(**{_READONLY: True})
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        # SQLite connections are in autocommit already (we issue BEGIN ourselves, and not here);
        # a PostgreSQL one is put in it for the statement, then reset by the pool.
        autocommit = {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {}
        self._peek_engine = engine.execution_options(**autocommit, **{_PEEK: True})
        # SQLite has one writer at a time: this process's writers queue here, woken as the one
        # before them ends, rather than in SQLite's busy handler, which sleeps in growing steps
        # (up to 100 ms) between looks at the lock. Reentrant: a write inside a write in one
        # thread meets SQLite's lock as before, not a deadlock here.
        self._one_writer: AbstractContextManager[Any] = (
            threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        self._lookups: list[Lookup] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One read-only transaction (a write inside it fails)."""
        with _unavailable_on_outage(), self._reader.begin() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read-only transaction on a bare Connection (Core, for hot paths such as token checks)."""
        with _unavailable_on_outage(), self._read_engine.begin() as conn:
            yield conn

    @contextmanager
    def peek(self) -> Iterator[Connection]:
        """A connection for one read-only statement, run on its own (autocommit: no BEGIN,
        COMMIT or isolation round trips). For a hot path's single lookup; several statements
        that must agree with each other take `read_connection`."""
        with _unavailable_on_outage(), self._peek_engine.connect() as conn:
            yield conn

    def lookup(self, statement: Select[Any]) -> Lookup:
        """`statement` compiled once, for `Lookup.one` (a hot path's single lookup)."""
        lookup = Lookup(self.engine, statement)
        self._lookups.append(lookup)
        return lookup

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction; committed when the block ends without an exception."""
        with self._one_writer, _unavailable_on_outage(), self._writer.begin() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction on a bare Connection (Core only; no ORM session to set up)."""
        with self._one_writer, _unavailable_on_outage(), self.engine.begin() as conn:
            yield conn

    def transact(self, work: Callable[[Session], T], *, attempts: int = 6) -> T:
        """Run `work` in a write transaction, again from the start when it loses a race.

        A lost race is a unique-key collision between concurrent first inserts, or a
        PostgreSQL deadlock / serialization failure; `work` must be safe to repeat.
        """
        return self._retrying(self.write, work, attempts)

    def transact_core(self, work: Callable[[Connection], T], *, attempts: int = 6) -> T:
        """`transact` for Core work on a bare Connection (the per-instance ingest path)."""
        return self._retrying(self.write_connection, work, attempts)

    def _retrying(
        self, begin: Callable[[], AbstractContextManager[Any]], work: Callable[[Any], T], attempts: int
    ) -> T:
        for attempt in range(1, attempts + 1):
            try:
                with begin() as handle:
                    return work(handle)
            except (IntegrityError, OperationalError) as exc:
                if attempt == attempts or not _retryable(exc):
                    raise
                log.info("db.retry", extra={"attempt": attempt, "error": type(exc).__name__})
                time.sleep(0.002 * attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        for lookup in self._lookups:
            lookup.close()
        self.engine.dispose()


class Lookup:
    """A read-only statement compiled once, run in autocommit on a bare driver connection of its
    own: what `Database.peek` does, without a `Connection`, its compiled-cache lookup and its
    result machinery, which are most of such a lookup's cost (0.2 ms of 0.22 on SQLite), for the
    one statement a C-STORE runs before its answer. Only for statements whose parameters and
    columns are plain values (text, integers, NULL): nothing is converted either way.

    Its connections are taken from the pool once and kept (detached, in autocommit), up to
    `_KEPT` idle ones: no checkout, pre-ping (a round trip of its own on PostgreSQL) or reset per
    lookup. One that fails with a disconnect is closed, and the next lookup opens another."""

    _KEPT = 8

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self._engine = engine
        self._sql = str(compiled)
        self._positions = compiled.positiontup if compiled.positional else None  # else by name
        self._values = dict(compiled.params)  # literals in the statement; the rest come with `one`
        self._postgresql = engine.dialect.name == "postgresql"
        self._idle: list[Any] = []  # detached pool connections, in autocommit
        self._guard = threading.Lock()
        self._closed = False

    def one(self, **params: Any) -> tuple[Any, ...] | None:
        """The first row, or None; an outage is `Unavailable`, as everywhere."""
        values = self._values | params
        args = values if self._positions is None else tuple(values[name] for name in self._positions)
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        with _unavailable_on_outage():
            connection = self._take(dbapi_error)
            cursor = None
            try:
                cursor = connection.cursor()
                cursor.execute(self._sql, args)
                row = cursor.fetchone()
                cursor.close()
            except dbapi_error as exc:
                disconnect = self._engine.dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
                if disconnect:
                    connection.close()
                else:
                    self._give(connection)
                raise self._wrapped(exc, disconnect=disconnect) from exc
            except BaseException:
                connection.close()
                raise
            self._give(connection)
            return None if row is None else tuple(row)

    def close(self) -> None:
        """Close the kept connections (the engine's `dispose` does not know them)."""
        with self._guard:
            idle, self._idle, self._closed = self._idle, [], True
        for connection in idle:
            connection.close()

    def _take(self, dbapi_error: type[Exception]) -> Any:
        with self._guard:
            if self._idle:
                return self._idle.pop()
        try:
            connection = self._engine.raw_connection()
        except dbapi_error as exc:  # the pool hands a failed connect on unwrapped
            raise self._wrapped(exc, disconnect=True) from exc
        connection.detach()  # ours now: closed by `close`, never returned to the pool
        if self._postgresql:
            driver: Any = connection.dbapi_connection
            driver.autocommit = True  # no transaction: one round trip
        return connection

    def _give(self, connection: Any) -> None:
        with self._guard:
            if not self._closed and len(self._idle) < self._KEPT:
                self._idle.append(connection)
                return
        connection.close()

    def _wrapped(self, exc: Exception, *, disconnect: bool) -> BaseException:
        return driver_error(self._engine.dialect, self._sql, exc, disconnect=disconnect)


def driver_error(dialect: Any, sql: str, exc: Exception, *, disconnect: bool) -> BaseException:
    """SQLAlchemy's own exception for a driver's, as a `Connection` would have raised it, for
    statements run on the driver's cursor (`Lookup`, `storage.prepared`)."""
    return cast(
        BaseException,
        DBAPIError.instance(
            sql,
            None,  # no parameters in messages: they may carry PHI
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=disconnect,
            dialect=dialect,
        ),
    )


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in _RETRYABLE_PG:
        return True
    return "database is locked" in str(exc.orig)


@contextmanager
def _unavailable_on_outage() -> Iterator[None]:
    """A database we cannot reach or write (disk full, server down) is Unavailable, not a crash."""
    try:
        yield
    except OperationalError as exc:
        message = str(exc.orig).lower()
        outage = (
            "disk is full",
            "database or disk is full",
            "connection",
            "could not connect",
            "server closed",
            "terminating connection",
            "no space left",
        )
        if any(word in message for word in outage):
            raise Unavailable("the index database is unavailable") from exc
        raise
