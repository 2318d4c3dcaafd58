"""Reading the recorded patient mismatches (`patient_mismatch`), newest first, for quality control."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.dicom_index.models import PatientMismatchRow


@dataclass(frozen=True)
class PatientMismatch:
    """One instance kept in a study of another patient. The identifiers are PHI: for the
    administrator's screen, never for a log."""

    received_at: datetime
    sop_uid: str
    study_uid: str
    study_id_system: str | None  # the patient the study belongs to
    study_patient_id: str | None
    instance_id_system: str | None  # what the instance carried
    instance_patient_id: str | None
    received_via: str
    calling_ae: str | None


def patient_mismatches(session: Session, *, limit: int | None = None) -> list[PatientMismatch]:
    newest_first = (PatientMismatchRow.received_at.desc(), PatientMismatchRow.pk.desc())
    stmt = select(PatientMismatchRow).order_by(*newest_first)
    return [
        PatientMismatch(
            r.received_at,
            r.sop_uid,
            r.study_uid,
            r.study_id_system,
            r.study_patient_id,
            r.instance_id_system,
            r.instance_patient_id,
            r.received_via,
            r.calling_ae,
        )
        for r in session.scalars(stmt.limit(limit))
    ]


def count_patient_mismatches(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PatientMismatchRow)) or 0
