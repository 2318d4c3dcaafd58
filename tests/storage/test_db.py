"""Sessions: a read is a read-only transaction, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError

from facade.wiring import Services
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
