"""The performed-step repository, in the caller's transaction. A step is found by its SOP
Instance UID and locked, so two N-SETs of one step apply one after the other; two N-CREATEs of
one UID at once meet at the unique key (`Database.transact` runs the loser again, which then
finds the step and refuses the duplicate)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mapping.dicom.mpps import PerformedFacts, PpsStatus
from storage.mpps.models import PerformedStepRow


@dataclass(frozen=True)
class StoredPps:
    pk: int
    sop_uid: str
    status: PpsStatus
    scheduled_step_pk: int | None
    patient_pk: int
    fhir_id: str
    dataset: dict[str, Any]  # DICOM JSON


def by_sop_uid(session: Session, sop_uid: str) -> StoredPps | None:
    row = session.scalar(
        select(PerformedStepRow).where(PerformedStepRow.sop_uid == sop_uid).with_for_update()
    )
    return _stored(row) if row is not None else None


def find(session: Session, sop_uid: str) -> StoredPps | None:
    """The step, for reading (no lock: an N-GET in a read-only transaction)."""
    row = session.scalar(select(PerformedStepRow).where(PerformedStepRow.sop_uid == sop_uid))
    return _stored(row) if row is not None else None


def add(
    session: Session,
    *,
    sop_uid: str,
    facts: PerformedFacts,
    dataset: dict[str, Any],
    scheduled_step_pk: int | None,
    patient_pk: int,
    fhir_id: str,
    calling_ae: str,
    now: datetime,
) -> StoredPps:
    row = PerformedStepRow(
        sop_uid=sop_uid,
        scheduled_step_pk=scheduled_step_pk,
        patient_pk=patient_pk,
        fhir_id=fhir_id,
        calling_ae=calling_ae[:16],
        created_at=now,
        **_columns(facts, dataset, now),
    )
    session.add(row)
    session.flush()
    return _stored(row)


def update(
    session: Session,
    stored: StoredPps,
    *,
    facts: PerformedFacts,
    dataset: dict[str, Any],
    scheduled_step_pk: int | None,
    now: datetime,
) -> StoredPps:
    """The step as an N-SET left it; linked to `scheduled_step_pk` when it names one now (an
    order that arrived after the N-CREATE), else as it was."""
    row = session.get_one(PerformedStepRow, stored.pk)
    if scheduled_step_pk is not None:
        row.scheduled_step_pk = scheduled_step_pk
    for key, value in _columns(facts, dataset, now).items():
        setattr(row, key, value)
    session.flush()
    return _stored(row)


def move_patient(session: Session, prior_pk: int, survivor_pk: int, now: datetime) -> list[StoredPps]:
    """Every performed step of the prior patient now belongs to the survivor (a merge)."""
    rows = session.scalars(
        select(PerformedStepRow).where(PerformedStepRow.patient_pk == prior_pk).with_for_update()
    ).all()
    for row in rows:
        row.patient_pk, row.changed_at = survivor_pk, now
    session.flush()
    return [_stored(row) for row in rows]


def procedure_of_study(session: Session, study_uid: str) -> str | None:
    """The Procedure of the first performed step that made the study (ImagingStudy.procedureReference
    holds one: later ones, IHE's append case, add to the study the first one began)."""
    return session.scalar(
        select(PerformedStepRow.fhir_id)
        .where(PerformedStepRow.study_uid == study_uid)
        .order_by(PerformedStepRow.pk)
        .limit(1)
    )


def remove_all(session: Session) -> None:
    """For tests and resets: every performed step."""
    session.execute(delete(PerformedStepRow))


def _columns(facts: PerformedFacts, dataset: dict[str, Any], now: datetime) -> dict[str, object]:
    return {
        "status": facts.status,
        "study_uid": facts.study_uid[:64],
        "start_date": facts.start_date[:8],
        "start_time": facts.start_time[:16],
        "end_date": facts.end_date[:8],
        "end_time": facts.end_time[:16],
        "dataset": dataset,
        "changed_at": now,
    }


def _stored(row: PerformedStepRow) -> StoredPps:
    return StoredPps(
        pk=row.pk,
        sop_uid=row.sop_uid,
        status=row.status,  # type: ignore[arg-type]
        scheduled_step_pk=row.scheduled_step_pk,
        patient_pk=row.patient_pk,
        fhir_id=row.fhir_id,
        dataset=row.dataset,
    )
