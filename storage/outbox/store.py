"""The HL7 outbox's repository: destinations, and the messages waiting for them.

Claiming (`OutboxStore.claim`) is the one place where several workers meet. It takes the due
messages of enabled destinations, oldest first, none while an older message of the same
destination and ordering key (the patient) is still pending, and leases them: on PostgreSQL with
`SELECT … FOR UPDATE SKIP LOCKED`, so that two processes claiming at once never take the same
row (each skips the rows the other is leasing), and a leased row stays out of every other claim
until its lease runs out or its outcome is recorded. On SQLite a write transaction holds the
database's write lock (`BEGIN IMMEDIATE`): the claims of one process follow each other. A claim
looks first (one prebuilt statement, autocommit) and takes no writer's lock while nothing is due (the
delivery worker looks several times a second, mostly at an empty outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from storage.db import Database
from storage.errors import Conflict
from storage.outbox.models import Hl7DestinationRow, Hl7OutboxRow

PENDING, SENT, DEAD = "pending", "sent", "dead"
STATES = (PENDING, SENT, DEAD)


_ANY_DUE = (  # built once: the delivery worker asks several times a second
    select(Hl7OutboxRow.pk)
    .where(
        Hl7OutboxRow.state == PENDING,
        Hl7OutboxRow.next_attempt_at <= bindparam("now"),
        or_(Hl7OutboxRow.lease_until.is_(None), Hl7OutboxRow.lease_until < bindparam("now")),
    )
    .limit(1)
)


@dataclass(frozen=True)
class Destination:
    name: str
    host: str
    port: int
    profile: dict[str, Any]
    enabled: bool = True


@dataclass(frozen=True)
class OutboxEntry:
    """A message as listed (no payload)."""

    pk: int
    destination: str
    control_id: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    ack_code: str | None
    last_error: str | None


@dataclass(frozen=True)
class Claimed:
    pk: int
    destination: str
    control_id: str
    payload: bytes
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed message; its lease ends."""

    pk: int
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    ack_code: str | None = None
    sent_at: datetime | None = None


def _destination(row: Hl7DestinationRow) -> Destination:
    return Destination(row.name, row.host, row.port, dict(row.profile), row.enabled)


class DestinationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, destination: Destination, now: datetime) -> None:
        """Register it; Conflict when the name is taken."""
        try:
            with self._db.write() as session:
                session.add(_row(destination, now))
        except IntegrityError as exc:
            raise Conflict(f"{destination.name} is registered already") from exc

    def remove(self, name: str, *, reason: str, now: datetime) -> bool:
        """Forget it; its pending messages become dead letters (`reason`). Whether it existed."""
        with self._db.write() as session:
            gone = _count(session.execute(delete(Hl7DestinationRow).where(Hl7DestinationRow.name == name)))
            session.execute(
                update(Hl7OutboxRow)
                .where(Hl7OutboxRow.destination == name, Hl7OutboxRow.state == PENDING)
                .values(state=DEAD, last_error=reason, lease_until=None, next_attempt_at=now)
            )
            return bool(gone)

    def set_enabled(self, name: str, enabled: bool) -> bool:
        """Pause (False) or resume a destination; whether it exists."""
        with self._db.write() as session:
            result = session.execute(
                update(Hl7DestinationRow).where(Hl7DestinationRow.name == name).values(enabled=enabled)
            )
            return bool(_count(result))

    def all(self) -> list[Destination]:
        with self._db.read() as session:
            rows = session.scalars(select(Hl7DestinationRow).order_by(Hl7DestinationRow.name))
            return [_destination(r) for r in rows]

    def enabled(self, session: Session) -> list[Destination]:
        """The enabled destinations, in the caller's transaction (the report write's)."""
        rows = session.scalars(
            select(Hl7DestinationRow)
            .where(Hl7DestinationRow.enabled.is_(True))
            .order_by(Hl7DestinationRow.name)
        )
        return [_destination(r) for r in rows]

    def sync(self, configured: Sequence[Destination], now: datetime) -> None:
        """Configured destinations into the table: new ones added, the host and port of known
        names set as configured (their profile and enabled flag are kept)."""
        if not configured:
            return
        with self._db.write() as session:
            for destination in configured:
                row = session.scalar(
                    select(Hl7DestinationRow).where(Hl7DestinationRow.name == destination.name)
                )
                if row is None:
                    session.add(_row(destination, now))
                elif (row.host, row.port) != (destination.host, destination.port):
                    row.host, row.port = destination.host, destination.port


def _row(destination: Destination, now: datetime) -> Hl7DestinationRow:
    return Hl7DestinationRow(
        name=destination.name,
        host=destination.host,
        port=destination.port,
        profile=destination.profile,
        enabled=destination.enabled,
        created_at=now,
    )


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(
        self,
        session: Session,
        *,
        destination: str,
        ordering_key: str,
        control_id: str,
        payload: bytes,
        now: datetime,
    ) -> None:
        """A pending message, due now, in the caller's transaction."""
        session.add(
            Hl7OutboxRow(
                destination=destination,
                ordering_key=ordering_key[:255],
                control_id=control_id,
                payload=payload,
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        session.flush()

    def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        """Lease up to `limit` due messages (see the module docstring), oldest first."""
        with self._db.peek() as conn:  # idle most of the time: look before taking the writer
            if conn.execute(_ANY_DUE, {"now": now}).first() is None:
                return []
        message, older = Hl7OutboxRow, aliased(Hl7OutboxRow)
        blocked = exists().where(
            older.destination == message.destination,
            older.ordering_key == message.ordering_key,
            older.state == PENDING,
            older.pk < message.pk,
        )
        enabled = select(Hl7DestinationRow.name).where(Hl7DestinationRow.enabled.is_(True))
        query = (
            select(message.pk, message.destination, message.control_id, message.payload, message.attempts)
            .where(
                message.state == PENDING,
                message.next_attempt_at <= now,
                or_(message.lease_until.is_(None), message.lease_until < now),
                message.destination.in_(enabled),
                ~blocked,
            )
            .order_by(message.pk)
            .limit(limit)
            .with_for_update(skip_locked=True, of=message)
        )
        with self._db.write() as session:
            rows = session.execute(query).all()
            if rows:
                session.execute(
                    update(Hl7OutboxRow)
                    .where(Hl7OutboxRow.pk.in_([r.pk for r in rows]))
                    .values(lease_until=lease_until)
                )
            return [Claimed(r.pk, r.destination, r.control_id, r.payload, r.attempts) for r in rows]

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """The outcomes of claimed messages, in one transaction; their leases end."""
        if not outcomes:
            return
        with self._db.write() as session:
            session.execute(
                update(Hl7OutboxRow),
                [
                    {
                        "pk": o.pk,
                        "state": o.state,
                        "attempts": o.attempts,
                        "next_attempt_at": o.next_attempt_at,
                        "lease_until": None,
                        "last_error": o.last_error,
                        "ack_code": o.ack_code,
                        "sent_at": o.sent_at,
                    }
                    for o in outcomes
                ],
            )

    def entries(self, state: str | None = None, *, limit: int = 1000) -> list[OutboxEntry]:
        """The newest `limit` messages (of `state`), oldest first."""
        query = select(Hl7OutboxRow).order_by(Hl7OutboxRow.pk.desc()).limit(limit)
        if state is not None:
            query = query.where(Hl7OutboxRow.state == state)
        with self._db.read() as session:
            return [
                OutboxEntry(
                    r.pk,
                    r.destination,
                    r.control_id,
                    r.state,
                    r.attempts,
                    r.created_at,
                    r.next_attempt_at,
                    r.sent_at,
                    r.ack_code,
                    r.last_error,
                )
                for r in reversed(session.scalars(query).all())
            ]

    def revive(self, pks: Sequence[int] | None, now: datetime) -> int:
        """Dead letters (those of `pks`, or all when None) pending again, due now, tries reset."""
        query = update(Hl7OutboxRow).where(Hl7OutboxRow.state == DEAD)
        if pks is not None:
            query = query.where(Hl7OutboxRow.pk.in_(list(pks)))
        values = {
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "lease_until": None,
            "ack_code": None,
        }
        with self._db.write() as session:
            return _count(session.execute(query.values(**values)))

    def count(self, state: str) -> int:
        with self._db.read() as session:
            return len(session.scalars(select(Hl7OutboxRow.pk).where(Hl7OutboxRow.state == state)).all())


def _count(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)
