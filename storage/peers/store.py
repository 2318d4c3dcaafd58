"""The remote AE registry's repository."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.errors import Conflict
from storage.peers.models import RemoteAeRow


@dataclass(frozen=True)
class RemoteAe:
    ae_title: str
    host: str
    port: int


class PeerStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, peer: RemoteAe, now: datetime) -> None:
        """Register `peer`; Conflict when its AE title is registered already."""
        values = {"ae_title": peer.ae_title, "host": peer.host, "port": peer.port, "created_at": now}
        try:
            with self._db.write_connection() as conn:
                conn.execute(insert(RemoteAeRow).values(**values))
        except IntegrityError as exc:
            raise Conflict(f"{peer.ae_title} is registered already") from exc

    def remove(self, ae_title: str) -> bool:
        """Whether a peer of that AE title was registered (and is no more)."""
        with self._db.write_connection() as conn:
            return bool(conn.execute(delete(RemoteAeRow).where(RemoteAeRow.ae_title == ae_title)).rowcount)

    def get(self, ae_title: str) -> RemoteAe | None:
        with self._db.read() as session:
            row = session.scalar(select(RemoteAeRow).where(RemoteAeRow.ae_title == ae_title))
            return RemoteAe(row.ae_title, row.host, row.port) if row is not None else None

    def all(self) -> list[RemoteAe]:
        with self._db.read() as session:
            rows = session.scalars(select(RemoteAeRow).order_by(RemoteAeRow.ae_title))
            return [RemoteAe(r.ae_title, r.host, r.port) for r in rows]
