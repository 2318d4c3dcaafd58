"""The audit use case on a real database: recording never writes, a flush writes in one
transaction, a failed flush keeps the events, a full queue drops instead of blocking; and the
migration that gave events their counts."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from facade.wiring import Services
from storage.audit.store import AuditStore
from storage.db import Database, make_engine
from storage.migrate import alembic_config, head_revision, upgrade
from storage.usecases.audit import Audit, AuditEvent
from tests.conftest import Clock


def test_events_reach_the_trail_on_flush_in_the_order_recorded(services: Services) -> None:
    store = AuditStore(services.db)
    before = store.events()
    services.audit.record(AuditEvent("fhir", "read", "allowed", client_id="app", method="GET", status=200))
    services.audit.record(
        AuditEvent(
            "dimse",
            "association",
            "released",
            client_id="MODALITY",
            peer="127.0.0.1",
            counts={"stored": 2, "refused": 1, "failed": 0},
        )
    )
    assert store.events(after_id=max((e.id for e in before), default=0)) == []  # queued only
    assert services.audit.flush() == 2
    assert services.audit.flush() == 0
    fhir, dimse = store.events(after_id=max((e.id for e in before), default=0))
    assert (fhir.source, fhir.action, fhir.outcome, fhir.client_id, fhir.status) == (
        "fhir",
        "read",
        "allowed",
        "app",
        200,
    )
    assert fhir.counts is None and fhir.recorded is not None
    assert (dimse.source, dimse.outcome, dimse.client_id, dimse.peer, dimse.method, dimse.path) == (
        "dimse",
        "released",
        "MODALITY",
        "127.0.0.1",
        "",
        "",
    )
    assert dimse.counts == {"stored": 2, "refused": 1, "failed": 0}
    assert [e.id for e in store.events(source="dimse")] == [dimse.id]


def test_texts_are_cut_to_their_columns(services: Services) -> None:
    services.audit.record(
        AuditEvent(
            "dicomweb-and-more",
            "a" * 40,
            "allowed-and-more",
            client_id="c" * 80,
            peer="p" * 80,
            method="PROPFIND1",
            path="/fhir/" + "x" * 600,
            detail="d" * 300,
        )
    )
    assert services.audit.flush() == 1
    (event,) = AuditStore(services.db).events()
    assert (len(event.source), len(event.action), len(event.outcome)) == (16, 32, 16)
    assert (len(event.client_id or ""), len(event.peer or ""), len(event.method)) == (64, 64, 8)
    assert (len(event.path), len(event.detail or "")) == (500, 200)


def test_a_failed_flush_keeps_the_events_for_the_next(services: Services) -> None:
    services.audit.record(AuditEvent("fhir", "search", "allowed"))
    with services.db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event RENAME TO audit_event_away"))
    try:
        assert services.audit.flush() == 0  # the write failed: logged, nothing lost
    finally:
        with services.db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event_away RENAME TO audit_event"))
    assert services.audit.flush() == 1
    assert [e.action for e in AuditStore(services.db).events()] == ["search"]


def test_a_full_queue_drops_instead_of_blocking_the_caller(services: Services, clock: Clock) -> None:
    audit = Audit(AuditStore(services.db), now=clock, capacity=2)
    for action in ("read", "search", "vread"):
        audit.record(AuditEvent("fhir", action, "allowed"))
    assert audit.flush() == 2
    assert [e.action for e in AuditStore(services.db).events()] == ["read", "search"]


def test_counts_migration_keeps_earlier_events(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_event (recorded, source, action, method, path, status, outcome)"
                    " VALUES (CURRENT_TIMESTAMP, 'fhir', 'read', 'GET', '/fhir/Patient/1', 200, 'allowed')"
                )
            )
        upgrade(engine)
        (earlier,) = AuditStore(Database(engine)).events()
        assert (earlier.path, earlier.counts) == ("/fhir/Patient/1", None)
        config = alembic_config()
        with engine.begin() as conn:  # and back: the column goes, the event stays
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar() == 1
        upgrade(engine)
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert revision == head_revision()
    finally:
        engine.dispose()
