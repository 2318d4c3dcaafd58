"""The migrations build exactly the tables the models declare, on SQLite and PostgreSQL; the
latest ones go down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

import storage.tables
from storage.db import make_engine
from storage.migrate import alembic_config, current_revision, head_revision, upgrade


def test_the_migrated_schema_is_the_models(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), storage.tables.Base.metadata) == []
    finally:
        engine.dispose()


LATEST = {  # revision -> what it adds: ("table", name) or ("index", table, name)
    "0011": ("table", "hl7_outbox"),
    "0010": ("table", "search_quantity"),
    "0009": ("table", "performed_step"),
    "0008": ("index", "patient", "ix_patient_merged_into"),
    "0007": ("table", "scheduled_step"),
    "0006": ("index", "patient", "ix_patient_patient_id"),
    "0005": ("table", "remote_ae"),
    "0004": ("table", "patient_mismatch"),
}


def _present(engine: Engine, what: tuple[str, ...]) -> bool:
    if what[0] == "table":
        return what[1] in inspect(engine).get_table_names()
    return what[2] in {ix["name"] for ix in inspect(engine).get_indexes(what[1])}


def test_the_latest_migrations_go_down_and_up(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        assert current_revision(engine) == head_revision() == max(LATEST)
        config = alembic_config()
        for revision, what in sorted(LATEST.items(), reverse=True):
            assert _present(engine, what), what
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.downgrade(config, "-1")
            assert current_revision(engine) != revision
            assert not _present(engine, what), what
        upgrade(engine)
        assert all(_present(engine, what) for what in LATEST.values())
    finally:
        engine.dispose()
