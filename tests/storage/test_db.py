"""Sessions: a read is a read-only transaction, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, bindparam, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError

from facade.wiring import Services
from storage.db import Database, make_engine
from storage.errors import Unavailable
from storage.fhir_store.models import FhirResourceRow

ROW = {
    "res_type": "Basic",
    "res_id": "probe",
    "version_id": 1,
    "last_updated": datetime(2026, 1, 1, tzinfo=UTC),
    "deleted": False,
    "provisional": False,
    "body": "{}",
}


def test_a_write_inside_a_read_is_refused(services: Services) -> None:
    with pytest.raises(DBAPIError), services.db.read() as session:
        session.execute(insert(FhirResourceRow).values(**ROW))
    with pytest.raises(DBAPIError), services.db.read_connection() as conn:
        conn.execute(text("UPDATE fhir_resource SET version_id = version_id + 1"))
    with services.db.read() as session:
        assert session.scalar(select(FhirResourceRow.res_id).where(FhirResourceRow.res_id == "probe")) is None


def test_a_write_after_a_read_on_the_same_connection_succeeds(services: Services) -> None:
    for _ in range(3):  # the pool hands the reader's connection to the writer
        with services.db.read() as session:
            session.scalar(select(FhirResourceRow.res_id).limit(1))
        with services.db.write() as session:
            session.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"probe-{_}"})))
    with services.db.read() as session:
        found = session.scalars(select(FhirResourceRow.res_id).where(FhirResourceRow.res_type == "Basic"))
        assert sorted(found) == ["probe-0", "probe-1", "probe-2"]


def test_reads_stay_read_only_between_writes(services: Services) -> None:
    """SQLite: a connection's `PRAGMA query_only` is set only when it changes (writes after writes
    skip it); every connection of the pool, in any order of reads and writes, still refuses a
    write inside a read."""
    for n in range(30):
        with services.db.write() as session:
            session.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"w-{n}"})))
        with services.db.write_connection() as conn:
            conn.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"c-{n}"})))
        with pytest.raises(DBAPIError), services.db.read() as session:
            session.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"r-{n}"})))
    with services.db.read() as session:
        found = list(
            session.scalars(select(FhirResourceRow.res_id).where(FhirResourceRow.res_type == "Basic"))
        )
    assert len(found) == 60 and not any(res_id.startswith("r-") for res_id in found)


def test_writers_of_one_process_take_turns(services: Services) -> None:
    """Many threads writing at once all commit (on SQLite they queue in the process, not in
    SQLite's busy handler)."""
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for m in range(10):
                with services.db.write() as session:
                    session.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"t-{n}-{m}"})))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with services.db.read() as session:
        assert (
            len(
                list(
                    session.scalars(select(FhirResourceRow.res_id).where(FhirResourceRow.res_type == "Basic"))
                )
            )
            == 60
        )


def test_a_peek_reads_what_is_committed_while_a_writer_holds_its_transaction(services: Services) -> None:
    """`Database.peek`, the one-statement read before a C-STORE answer: no transaction of its own,
    so a writer under way (SQLite's write lock, a PostgreSQL row lock) neither blocks it nor shows
    it what is not committed; and the connection it used serves writers as before."""
    probe = select(FhirResourceRow.res_id).where(FhirResourceRow.res_type == "Basic")
    with services.db.write() as session:
        session.execute(insert(FhirResourceRow).values(**ROW))
    with services.db.write() as writing:
        writing.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": "uncommitted"})))
        writing.flush()
        with services.db.peek() as conn:
            assert list(conn.scalars(probe)) == ["probe"]
    for n in range(3):  # the pool hands the peek's connection to writers and readers alike
        with services.db.peek() as conn:
            conn.scalars(probe).all()
        with services.db.write() as session:
            session.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"after-{n}"})))
    with services.db.read() as session:
        assert len(session.scalars(probe).all()) == 5


def test_a_lookup_reads_what_is_committed_and_leaves_its_connection_as_it_found_it(
    services: Services,
) -> None:
    """`Database.lookup`, the C-STORE admission's statement on a bare driver connection: the same
    rows as Core, no transaction of its own (a writer under way neither blocks it nor shows it
    what is not committed), and the pool's connections left to writers and readers as they were
    (the lookup keeps its own)."""
    probe = select(FhirResourceRow.res_id, FhirResourceRow.version_id).where(
        FhirResourceRow.res_type == "Basic", FhirResourceRow.res_id == bindparam("id")
    )
    lookup = services.db.lookup(probe)
    assert lookup.one(id="probe") is None
    with services.db.write() as session:
        session.execute(insert(FhirResourceRow).values(**ROW))
    assert lookup.one(id="probe") == ("probe", 1)
    with services.db.write() as writing:
        writing.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": "uncommitted"})))
        writing.flush()
        assert lookup.one(id="uncommitted") is None
        assert lookup.one(id="probe") == ("probe", 1)
    for n in range(25):  # more than the pool keeps: every connection passes through a lookup
        assert lookup.one(id="probe") == ("probe", 1)
        with services.db.write() as session:
            session.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"after-{n}"})))
        with pytest.raises(DBAPIError), services.db.read() as session:
            session.execute(insert(FhirResourceRow).values(**(ROW | {"res_id": f"refused-{n}"})))
    with services.db.read() as session:
        count = select(FhirResourceRow.res_id).where(FhirResourceRow.res_type == "Basic")
        assert len(session.scalars(count).all()) == 27


def test_a_lookup_on_a_database_that_cannot_be_reached_is_unavailable() -> None:
    """As every other way in: the C-STORE answers 0xA700 (out of resources), not a crash."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = Database(make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none?connect_timeout=2"))
    try:
        with pytest.raises(Unavailable):
            db.lookup(select(FhirResourceRow.res_id).where(FhirResourceRow.res_id == bindparam("id"))).one(
                id="x"
            )
    finally:
        db.dispose()


def test_a_postgresql_connection_dropped_while_resting_in_the_pool_is_replaced(
    backend: str, database_url: str
) -> None:
    """A connection the server dropped (a restart, an idle timeout) is checked when it is handed
    out after resting, and replaced: the caller never sees the failure. One given back moments
    ago is handed out again without that round trip: dropped, its statement fails (Unavailable,
    as in an outage) and the pool starts afresh."""
    if backend != "postgresql":
        pytest.skip("SQLite connections are files: nothing drops them")
    checked, unchecked = (Database(make_engine(database_url, ping_after=after)) for after in (0.0, 60.0))
    try:
        for db in (checked, unchecked):
            with db.read_connection() as conn:
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with admin_connection(database_url) as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            if db is unchecked:
                with pytest.raises(Unavailable), db.read_connection() as conn:
                    conn.exec_driver_sql("SELECT 2")
            with db.read_connection() as conn:  # checked, found dropped, replaced; or afresh
                assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
    finally:
        checked.dispose()
        unchecked.dispose()


@contextmanager
def admin_connection(url: str) -> Iterator[Connection]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()
