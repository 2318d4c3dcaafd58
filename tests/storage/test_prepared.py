"""Prepared inserts, lookups and updates, on SQLite and PostgreSQL: what they write reads back as
`Connection.execute` would have written it, what they read comes as it would have read it (aware
UTC datetimes, JSON, booleans); a driver error is SQLAlchemy's
exception (what the retries and the group commit catch) without the parameters in its text; a
savepoint rolls them back; listeners see each statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from facade.wiring import Services
from mapping.dicom.facts import PatientFacts
from storage.dicom_index.writer import patient_of  # a patient row for the order to point at
from storage.fhir_store.models import FhirResourceRow, SearchDate
from storage.orders.models import RequestedProcedureRow
from storage.prepared import PreparedInsert, PreparedQuery, insert_all, query_all

RESOURCE = cast(Table, FhirResourceRow.__table__)
COLUMNS = ("res_type", "res_id", "version_id", "last_updated", "deleted", "provisional", "body")
INSERT = PreparedInsert(insert(RESOURCE), COLUMNS)
DATES = PreparedInsert(
    insert(cast(Table, SearchDate.__table__)), ("res_type", "res_id", "param", "low", "high")
)
AT = datetime(2026, 12, 3, 10, 30, tzinfo=timezone(timedelta(hours=2)))


BASIC = (
    select(FhirResourceRow.res_id).where(FhirResourceRow.res_type == "Basic").order_by(FhirResourceRow.res_id)
)


def row(res_id: str) -> dict[str, Any]:
    return {
        "res_type": "Basic",
        "res_id": res_id,
        "version_id": 1,
        "last_updated": AT,
        "deleted": False,
        "provisional": True,
        "body": '{"secret": "PHI"}',
    }


def test_values_read_back_as_the_orm_writes_them(services: Services) -> None:
    with services.db.write_connection() as conn:
        INSERT.one(conn, row("a"))
        DATES.many(conn, [{"res_type": "Basic", "res_id": "a", "param": "d", "low": AT, "high": AT}] * 2)
    with services.db.read() as session:
        stored = session.get_one(FhirResourceRow, ("Basic", "a"))
        lows = session.scalars(select(SearchDate.low).where(SearchDate.res_id == "a")).all()
    assert stored.last_updated == AT and stored.last_updated.tzinfo == UTC
    assert (stored.provisional, stored.deleted, stored.body) == (True, False, '{"secret": "PHI"}')
    assert lows == [AT, AT]


def test_returning_and_json(services: Services) -> None:
    procedure = cast(Table, RequestedProcedureRow.__table__)
    columns = ("fhir_id", "patient_pk", "placer", "filler", "accession", "study_uid", "status", "facts")
    prepared = PreparedInsert(
        insert(procedure).returning(procedure.c.pk), (*columns, "created_at", "changed_at")
    )
    with services.db.write_connection() as conn:
        patient_pk, _ = patient_of(conn, PatientFacts("P1", "urn:x", "Doe^J", "", ""), AT)
        values = dict.fromkeys(("placer", "filler", "accession", "study_uid", "status"), "x")
        pk = prepared.one(
            conn,
            values
            | {"fhir_id": "sr-1", "patient_pk": patient_pk, "facts": {"a": [1, "é"]}, "created_at": AT}
            | {"changed_at": AT},
        )
    with services.db.read() as session:
        stored = session.get_one(RequestedProcedureRow, pk)
    assert (stored.fhir_id, stored.facts) == ("sr-1", {"a": [1, "é"]})


def test_a_driver_error_is_sqlalchemys_without_parameters(services: Services) -> None:
    with pytest.raises(IntegrityError) as raised, services.db.write_connection() as conn:
        INSERT.one(conn, row("dup"))
        INSERT.one(conn, row("dup"))
    assert "PHI" not in str(raised.value)
    with pytest.raises(IntegrityError), services.db.write_connection() as conn:
        insert_all(conn, [(INSERT, [row("dup2")]), (INSERT, [row("dup2")])])
    with services.db.read() as session:
        assert session.scalars(BASIC).all() == []


def test_a_savepoint_rolls_them_back_and_listeners_see_them(services: Services) -> None:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0])

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        with services.db.write() as session:
            insert_all(session.connection(), [(INSERT, [row("kept")]), (DATES, [])])
            try:
                with session.begin_nested():  # its SAVEPOINT goes with the next connection() asked
                    insert_all(
                        session.connection(), [(INSERT, [row("gone"), row("gone2")]), (INSERT, [row("kept")])]
                    )
            except IntegrityError:
                pass
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    with services.db.read() as session:
        assert session.scalars(BASIC).all() == ["kept"]
    assert seen.count("INSERT") == 3


BY_TYPE = PreparedQuery(
    select(FhirResourceRow.res_id, FhirResourceRow.last_updated, FhirResourceRow.provisional)
    .where(FhirResourceRow.res_type == bindparam("type"))
    .order_by(FhirResourceRow.res_id)
)
BUMP = PreparedQuery(  # the 1 is the statement's own value, not a parameter
    update(RESOURCE)
    .where(RESOURCE.c.res_type == bindparam("type"), RESOURCE.c.res_id == bindparam("id"))
    .values(version_id=RESOURCE.c.version_id + 1, last_updated=bindparam("now"))
)


def test_lookups_and_updates_read_as_connection_execute_would(services: Services) -> None:
    later = AT + timedelta(hours=1)
    with services.db.write_connection() as conn:
        INSERT.many(conn, [row("b"), row("a")])
        assert BUMP.rowcount(conn, {"type": "Basic", "id": "a", "now": later}) == 1
        assert BUMP.rowcount(conn, {"type": "Basic", "id": "none", "now": later}) == 0
        found = BY_TYPE.all(conn, {"type": "Basic"})
        assert BY_TYPE.first(conn, {"type": "Patient"}) is None
    assert [(r.res_id, r.last_updated, r.provisional) for r in found] == [("a", later, True), ("b", AT, True)]
    assert found[0].last_updated.tzinfo == UTC  # through the column's result processor
    with services.db.read() as session:
        versions = session.execute(
            select(FhirResourceRow.res_id, FhirResourceRow.version_id).where(
                FhirResourceRow.res_type == "Basic"
            )
        ).all()
    assert sorted(versions) == [("a", 2), ("b", 1)]


def test_a_lookup_reads_json_and_a_driver_error_is_sqlalchemys(services: Services) -> None:
    procedure = cast(Table, RequestedProcedureRow.__table__)
    facts = PreparedQuery(select(procedure.c.facts).where(procedure.c.fhir_id == bindparam("id")))
    with services.db.write_connection() as conn:
        patient_pk, _ = patient_of(conn, PatientFacts("P1", "urn:x", "Doe^J", "", ""), AT)
        conn.execute(
            insert(procedure),
            dict.fromkeys(("placer", "filler", "accession", "study_uid", "status"), "x")
            | {"fhir_id": "sr-1", "patient_pk": patient_pk, "facts": {"a": [1, "é"]}}
            | {"created_at": AT, "changed_at": AT},
        )
        assert facts.first(conn, {"id": "sr-1"}).facts == {"a": [1, "é"]}
    bad = PreparedQuery(update(RESOURCE).values(version_id=bindparam("v")))
    with pytest.raises(IntegrityError) as raised, services.db.write_connection() as conn:
        INSERT.one(conn, row("c"))
        bad.rowcount(conn, {"v": None})  # NOT NULL
    assert "PHI" not in str(raised.value)


def test_lookups_read_together_give_what_each_gives_alone(services: Services) -> None:
    """`query_all`: on PostgreSQL one pipeline; the rows of each as its own `all` gives them."""
    with services.db.write_connection() as conn:
        INSERT.many(conn, [row("b"), row("a")])
        lookups = [(BY_TYPE, {"type": "Basic"}), (BY_TYPE, {"type": "Patient"}), (BY_TYPE, {"type": "Basic"})]
        together = query_all(conn, lookups)
        alone = [query.all(conn, params) for query, params in lookups]
    assert together == alone and [len(rows) for rows in together] == [2, 0, 2]
    assert together[0][0].last_updated == AT and together[0][0].last_updated.tzinfo == UTC
