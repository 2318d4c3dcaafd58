"""Remote Application Entities we may connect to: C-MOVE destinations and the PACS that
`facade remote` queries (PS3.7 D.3.3.1: an AE title names an AE, a host and port reach it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Id, Stamp


class RemoteAeRow(Base):
    __tablename__ = "remote_ae"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Stamp)
