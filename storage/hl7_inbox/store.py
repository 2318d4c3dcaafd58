"""The HL7 inbox repository: each inbound message with the ACK we answered, in the caller's
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.hl7_inbox.models import Hl7MessageRow
from storage.prepared import PreparedInsert

MESSAGE = cast(Table, Hl7MessageRow.__table__)
_COLUMNS = ("received_at", "peer", "sending_application", "sending_facility", "control_id", "message_type")
_INSERT = PreparedInsert(insert(MESSAGE), (*_COLUMNS, "ack_code", "raw", "ack"))
_CLAIM = {
    "sqlite": PreparedInsert(
        sqlite.insert(MESSAGE).on_conflict_do_nothing().returning(MESSAGE.c.pk),
        (*_COLUMNS, "ack_code", "raw", "ack"),
    ),
    "postgresql": PreparedInsert(
        postgresql.insert(MESSAGE).on_conflict_do_nothing().returning(MESSAGE.c.pk),
        (*_COLUMNS, "ack_code", "raw", "ack"),
    ),
}


@dataclass(frozen=True)
class MessageKey:
    """MSH-3.1, MSH-4.1, MSH-10: what makes a resend the same message."""

    sending_application: str
    sending_facility: str
    control_id: str


def answered(session: Session, key: MessageKey) -> tuple[bytes, str] | None:
    """The ACK stored for the message of `key`, and its code (AA / AE / AR), if it came before."""
    row = session.execute(
        select(Hl7MessageRow.ack, Hl7MessageRow.ack_code).where(
            Hl7MessageRow.sending_application == key.sending_application[:227],
            Hl7MessageRow.sending_facility == key.sending_facility[:227],
            Hl7MessageRow.control_id == key.control_id[:199],
        )
    ).first()
    return (row.ack, row.ack_code) if row is not None else None


def claim(
    session: Session,
    *,
    key: MessageKey,
    raw: bytes,
    ack: bytes,
    ack_code: str,
    message_type: str,
    peer: str,
    now: datetime,
) -> tuple[bytes, str] | None:
    """Keep a message with the ACK it will get, unless a message of `key` is kept already: then
    that one's ACK and code (a resend), and nothing is written. One statement for a new message
    (an insert that does nothing on the unique key), two for a resend. On PostgreSQL, a copy
    being applied by another transaction holds this one until it ends; committed, it is found."""
    values = _values(key, raw, ack, ack_code, message_type, peer, now)
    conn = session.connection()
    if _CLAIM[conn.dialect.name].one(conn, values) is not None:
        return None
    stored = answered(session, key)
    if stored is None:  # the unique key held, but by a row gone since (its transaction rolled back)
        raise RuntimeError("hl7 inbox: the message key is held and not found")
    return stored


def keep(
    session: Session,
    *,
    key: MessageKey | None,
    raw: bytes,
    ack: bytes,
    ack_code: str,
    message_type: str,
    peer: str,
    now: datetime,
) -> None:
    """Keep a message and its ACK; a message whose MSH could not be read has no key."""
    _INSERT.one(session.connection(), _values(key, raw, ack, ack_code, message_type, peer, now))


def _values(  # noqa: PLR0917
    key: MessageKey | None,
    raw: bytes,
    ack: bytes,
    ack_code: str,
    message_type: str,
    peer: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "received_at": now,
        "peer": peer[:64],
        "sending_application": key.sending_application[:227] if key else None,
        "sending_facility": key.sending_facility[:227] if key else None,
        "control_id": key.control_id[:199] if key else None,
        "message_type": message_type[:16],
        "ack_code": ack_code,
        "raw": raw,
        "ack": ack,
    }


def count(session: Session, ack_code: str | None = None) -> int:
    """How many messages are kept (with that ACK code)."""
    query = select(Hl7MessageRow.pk)
    if ack_code is not None:
        query = query.where(Hl7MessageRow.ack_code == ack_code)
    return len(session.scalars(query).all())
