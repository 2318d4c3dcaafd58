"""Every inbound HL7 message and the ACK we answered, kept: the audit of what a RIS sent, and
the de-duplication of resends (same MSH-3, MSH-4, MSH-10: answered with the stored ACK, not
applied twice). The raw bytes are PHI: they stay here and never reach a log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Id, Stamp


class Hl7MessageRow(Base):
    __tablename__ = "hl7_message"
    __table_args__ = (
        UniqueConstraint("sending_application", "sending_facility", "control_id", name="uq_hl7_message_key"),
    )

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(Stamp, index=True)
    peer: Mapped[str] = mapped_column(String(64), default="")  # host:port it came from
    # MSH-3.1, MSH-4.1, MSH-10; None when the MSH could not be read (such messages never match)
    sending_application: Mapped[str | None] = mapped_column(String(227))
    sending_facility: Mapped[str | None] = mapped_column(String(227))
    control_id: Mapped[str | None] = mapped_column(String(199))
    message_type: Mapped[str] = mapped_column(String(16), default="")  # MSH-9.1^MSH-9.2
    ack_code: Mapped[str] = mapped_column(String(2))  # AA / AE / AR
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    ack: Mapped[bytes] = mapped_column(LargeBinary)
