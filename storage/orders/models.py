"""Orders: requested procedures (one FHIR ServiceRequest each) and their scheduled procedure
steps (one Modality Worklist entry each). The facts are kept whole as JSON (`mapping.order.
facts`, what the worklist answers and the ServiceRequest shows); the columns beside them are
what messages look orders up by (placer, filler, accession) and what worklist queries narrow by
(station, date, modality, status). The patient is the DICOM index's patient row: one identity,
which images, orders and merges share.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Id, Stamp


class RequestedProcedureRow(Base):
    __tablename__ = "requested_procedure"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    fhir_id: Mapped[str] = mapped_column(String(64), unique=True)  # ServiceRequest.id
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    placer: Mapped[str] = mapped_column(String(64), default="", index=True)  # ORC-2.1
    filler: Mapped[str] = mapped_column(String(64), default="", index=True)  # ORC-3.1
    accession: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # FHIR ServiceRequest.status
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)  # RequestedProcedure without its steps
    created_at: Mapped[datetime] = mapped_column(Stamp)
    changed_at: Mapped[datetime] = mapped_column(Stamp)


class ScheduledStepRow(Base):
    __tablename__ = "scheduled_step"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    procedure_pk: Mapped[int] = mapped_column(ForeignKey("requested_procedure.pk"), index=True)
    sps_id: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16))  # (0040,0020) Scheduled Procedure Step Status
    modality: Mapped[str] = mapped_column(String(16), default="")
    start_date: Mapped[str] = mapped_column(String(8), default="")  # (0040,0002) DA
    start_time: Mapped[str] = mapped_column(String(16), default="")  # (0040,0003) TM
    station_aets: Mapped[str] = mapped_column(String(255), default="")  # '\\'-joined (0040,0001)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)  # ScheduledStep
    changed_at: Mapped[datetime] = mapped_column(Stamp)


# the worklist's broad query (IHE RAD-5: station, date, modality) narrows by date first
Index("ix_scheduled_step_open", ScheduledStepRow.start_date, ScheduledStepRow.status)
