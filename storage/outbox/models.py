"""The HL7 outbox: where ORU^R01 messages wait for their destination's ACK (written in the
transaction of the report change that caused them), and the destinations they go to.

A message is `pending` until its ACK: `sent` on AA, `dead` on AE / AR or after too many tries
(`last_error` says why; `facade outbox retry` makes it pending again). `lease_until` is set while
a worker delivers it, so that no other worker (another process on the same PostgreSQL) takes it
meanwhile; a worker that dies leaves a lease that runs out, and the message is sent again. The
payload is PHI: it stays here and never reaches a log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Id, Stamp


class Hl7DestinationRow(Base):
    __tablename__ = "hl7_destination"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)  # mapping.hl7.oru.OruProfile as JSON
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Stamp)


class Hl7OutboxRow(Base):
    __tablename__ = "hl7_outbox"
    __table_args__ = (
        # the claim: due messages, oldest first; the older message of the same destination and key
        Index("ix_hl7_outbox_due", "state", "next_attempt_at"),
        Index("ix_hl7_outbox_order", "destination", "ordering_key", "pk"),
    )

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(64))  # hl7_destination.name
    ordering_key: Mapped[str] = mapped_column(String(255))  # the patient: sent in order per key
    control_id: Mapped[str] = mapped_column(String(64), unique=True)  # MSH-10
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the encoded message, unframed
    state: Mapped[str] = mapped_column(String(8))  # pending / sent / dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Stamp)
    lease_until: Mapped[datetime | None] = mapped_column(Stamp)  # being delivered until then
    last_error: Mapped[str | None] = mapped_column(String(400))
    ack_code: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    sent_at: Mapped[datetime | None] = mapped_column(Stamp)
