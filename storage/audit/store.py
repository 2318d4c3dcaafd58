"""The audit trail's repository: append rows in one transaction, read them back in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select

from storage.audit.models import AuditEventRow
from storage.db import Database


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` (column name -> value) in one transaction: all of them or none."""
        if rows:
            with self._db.write_connection() as conn:
                conn.execute(insert(AuditEventRow), list(rows))

    def events(
        self, *, source: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[AuditEventRow]:
        """Rows with an id above `after_id`, oldest first, of one source or all."""
        query = select(AuditEventRow).where(AuditEventRow.id > after_id)
        if source is not None:
            query = query.where(AuditEventRow.source == source)
        with self._db.read() as session:
            return list(session.scalars(query.order_by(AuditEventRow.id).limit(limit)))
