"""The migrations build exactly the tables the models declare, on SQLite and PostgreSQL; 0004
(patient_mismatch) goes down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

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


LATEST = {"0005": "remote_ae", "0004": "patient_mismatch"}  # revision -> the table it adds


def test_the_latest_migrations_go_down_and_up(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        assert current_revision(engine) == head_revision() == max(LATEST)
        config = alembic_config()
        for revision, table in sorted(LATEST.items(), reverse=True):
            assert table in inspect(engine).get_table_names()
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.downgrade(config, "-1")
            assert current_revision(engine) != revision
            assert table not in inspect(engine).get_table_names()
        upgrade(engine)
        assert set(LATEST.values()) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
