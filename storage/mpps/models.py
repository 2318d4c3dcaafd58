"""Performed procedure steps (MPPS, PS3.4 F.7): one row per SOP Instance a modality created, the
data set kept whole as DICOM JSON (PS3.18 F.2) as the last N-SET left it, and beside it what the
archive looks a step up by or shows: its status, the scheduled step it carries out (none: IHE's
unscheduled case), the study, start and end, and the FHIR Procedure it is published as.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Id, Stamp


class PerformedStepRow(Base):
    __tablename__ = "performed_step"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)  # Affected SOP Instance UID
    status: Mapped[str] = mapped_column(String(16))  # (0040,0252): IN PROGRESS, COMPLETED, DISCONTINUED
    scheduled_step_pk: Mapped[int | None] = mapped_column(ForeignKey("scheduled_step.pk"), index=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)  # Procedure.subject
    study_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    start_date: Mapped[str] = mapped_column(String(8), default="")  # (0040,0244) DA
    start_time: Mapped[str] = mapped_column(String(16), default="")  # (0040,0245) TM
    end_date: Mapped[str] = mapped_column(String(8), default="")  # (0040,0250) DA
    end_time: Mapped[str] = mapped_column(String(16), default="")  # (0040,0251) TM
    fhir_id: Mapped[str] = mapped_column(String(64), unique=True)  # Procedure.id
    calling_ae: Mapped[str] = mapped_column(String(16), default="")  # who created it
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON)  # DICOM JSON
    created_at: Mapped[datetime] = mapped_column(Stamp)
    changed_at: Mapped[datetime] = mapped_column(Stamp)
