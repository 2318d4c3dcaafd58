"""Reading the DICOM index for the FHIR resources derived from it: which studies and patients
changed since they were last published, and their facts.

A study's ImagingStudy depends on the study row, its series and instances and nothing else
that changes (its patient's FHIR id is fixed); a patient's Patient on the patient row. Ingest
bumps `change_seq` in the transaction that changes them, so `change_seq - published_seq`
counts the changes not yet published. The `lock` variants take the rows FOR UPDATE, patient
before study as ingest does (`storage.dicom_index.writer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar, cast

from sqlalchemy import Select, Table, bindparam, select, update
from sqlalchemy.orm import Session

from mapping.dicom.facts import Code, InstanceFacts, PatientFacts, SeriesFacts, StudyFacts
from mapping.fhir.imaging_study import SeriesView
from storage.dicom_index.models import InstanceRow, PatientRow, SeriesRow, StudyRow

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

F = TypeVar("F", bound="DataclassInstance")


@dataclass(frozen=True)
class Change:
    """Where a derived resource stands: the index's change counter and the one last published."""

    pk: int
    changed_at: datetime
    change_seq: int
    published_seq: int

    @property
    def unpublished(self) -> int:
        """How many changes of the index the stored resource does not show yet."""
        return max(0, self.change_seq - self.published_seq)


@dataclass(frozen=True)
class IndexedPatient:
    fhir_id: str
    facts: PatientFacts
    change: Change
    replaced_by: str | None = None  # the FHIR id of the patient this one was merged into
    replaces: tuple[str, ...] = ()  # the FHIR ids of the patients merged into this one


@dataclass(frozen=True)
class IndexedStudy:
    facts: StudyFacts
    patient_fhir_id: str
    change: Change


def study(session: Session, study_uid: str, *, lock: bool = False) -> IndexedStudy | None:
    stmt = _studies().where(StudyRow.study_uid == study_uid)
    row = session.execute(stmt.with_for_update(of=StudyRow) if lock else stmt).first()
    return _study(row.StudyRow, row.fhir_id) if row is not None else None


def patient(session: Session, fhir_id: str, *, lock: bool = False) -> IndexedPatient | None:
    stmt = select(PatientRow).where(PatientRow.fhir_id == fhir_id)
    row = session.scalar(stmt.with_for_update() if lock else stmt)
    return _patient(session, row) if row is not None else None


def studies_of_accession(session: Session, accession: str, patient_pk: int) -> list[str]:
    """The Study Instance UIDs of the patient's studies with this Accession Number (at most 2:
    enough to tell one from several)."""
    stmt = select(StudyRow.study_uid).where(
        StudyRow.accession == accession, StudyRow.patient_pk == patient_pk
    )
    return list(session.scalars(stmt.limit(2)))


def patient_fhir_id(session: Session, pk: int) -> str:
    """The FHIR id of the patient row `pk` (orders and performed steps keep the row's pk)."""
    return session.get_one(PatientRow, pk).fhir_id


def pending_studies(
    session: Session,
    *,
    quiet_since: datetime | None = None,
    limit: int | None = None,
    lock: bool = False,
    skip_locked: bool = False,
) -> list[IndexedStudy]:
    """Studies changed since their ImagingStudy was last published (only those unchanged since
    `quiet_since` when given); `lock` takes them FOR UPDATE, skipping rows another process
    holds when `skip_locked`."""
    stmt = _studies().where(StudyRow.published_seq < StudyRow.change_seq)
    if quiet_since is not None:
        stmt = stmt.where(StudyRow.changed_at <= quiet_since)
    stmt = stmt.order_by(StudyRow.pk).limit(limit)
    if lock:
        stmt = stmt.with_for_update(of=StudyRow, skip_locked=skip_locked)
    return [_study(row.StudyRow, row.fhir_id) for row in session.execute(stmt)]


def pending_patients(
    session: Session, *, limit: int | None = None, lock: bool = False, skip_locked: bool = False
) -> list[IndexedPatient]:
    """Patients changed since their Patient was last published."""
    stmt = select(PatientRow).where(PatientRow.published_seq < PatientRow.change_seq)
    stmt = stmt.order_by(PatientRow.pk).limit(limit)
    if lock:
        stmt = stmt.with_for_update(skip_locked=skip_locked)
    return [_patient(session, row) for row in session.scalars(stmt).all()]


def anything_pending(session: Session) -> bool:
    """Whether any study or patient changed since it was last published."""
    for stmt in (
        select(PatientRow.pk).where(PatientRow.published_seq < PatientRow.change_seq),
        select(StudyRow.pk).where(StudyRow.published_seq < StudyRow.change_seq),
    ):
        if session.scalar(stmt.limit(1)) is not None:
            return True
    return False


def quiet(session: Session, study_uids: Sequence[str], quiet_since: datetime) -> set[str]:
    """Those of `study_uids` that are fully published and unchanged since `quiet_since`; a
    study the index no longer holds counts as quiet."""
    if not study_uids:
        return set()
    busy = session.scalars(
        select(StudyRow.study_uid).where(
            StudyRow.study_uid.in_(study_uids),
            (StudyRow.changed_at > quiet_since) | (StudyRow.published_seq < StudyRow.change_seq),
        )
    )
    return set(study_uids) - set(busy)


def mark_study_published(session: Session, change: Change) -> None:
    """The study's ImagingStudy now shows the index as of `change.change_seq`."""
    session.connection().execute(_MARK_STUDY, {"b_pk": change.pk, "b_seq": change.change_seq})


def mark_patient_published(session: Session, change: Change) -> None:
    session.connection().execute(_MARK_PATIENT, {"b_pk": change.pk, "b_seq": change.change_seq})


# Core, built once (no ORM session synchronisation: the rows' objects are not read after)
_MARK_STUDY = (
    update(cast(Table, StudyRow.__table__))
    .where(StudyRow.__table__.c.pk == bindparam("b_pk"))
    .values(published_seq=bindparam("b_seq"))
)
_MARK_PATIENT = (
    update(cast(Table, PatientRow.__table__))
    .where(PatientRow.__table__.c.pk == bindparam("b_pk"))
    .values(published_seq=bindparam("b_seq"))
)


def series_views(session: Session, study_uid: str) -> list[SeriesView]:
    """The study's series and instances in DICOM order (series number, instance number, UID);
    series without instances are left out."""
    series = session.scalars(
        select(SeriesRow)
        .join(StudyRow, StudyRow.pk == SeriesRow.study_pk)
        .where(StudyRow.study_uid == study_uid)
    ).all()
    instances = (
        session.scalars(select(InstanceRow).where(InstanceRow.series_pk.in_([s.pk for s in series]))).all()
        if series
        else []
    )
    by_series: dict[int, list[InstanceRow]] = {s.pk: [] for s in series}
    for inst in instances:
        by_series[inst.series_pk].append(inst)
    views = []
    for s in sorted(series, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid)):
        rows = sorted(
            by_series[s.pk], key=lambda i: (i.instance_number is None, i.instance_number or 0, i.sop_uid)
        )
        if rows:
            views.append(SeriesView(_facts(SeriesFacts, s), [_facts(InstanceFacts, i) for i in rows]))
    return views


def _studies() -> Select[StudyRow, str]:
    return select(StudyRow, PatientRow.fhir_id).join(PatientRow, PatientRow.pk == StudyRow.patient_pk)


def _study(row: StudyRow, patient_fhir_id: str) -> IndexedStudy:
    codes = tuple(Code(c.get("system"), c["code"] or "", c.get("display")) for c in row.procedure_codes or [])
    return IndexedStudy(
        _facts(StudyFacts, row, procedure_codes=codes),
        patient_fhir_id,
        Change(row.pk, row.changed_at, row.change_seq, row.published_seq),
    )


def _patient(session: Session, row: PatientRow) -> IndexedPatient:
    replaced_by = (
        session.scalar(select(PatientRow.fhir_id).where(PatientRow.pk == row.merged_into))
        if row.merged_into is not None
        else None
    )
    replaces = session.scalars(
        select(PatientRow.fhir_id).where(PatientRow.merged_into == row.pk).order_by(PatientRow.pk)
    ).all()
    return IndexedPatient(
        row.fhir_id,
        _facts(PatientFacts, row, issuer_stated=False),  # the index keeps the resolved system only
        Change(row.pk, row.changed_at, row.change_seq, row.published_seq),
        replaced_by,
        tuple(replaces),
    )


def _facts(cls: type[F], row: object, **overrides: object) -> F:
    """Index row -> facts: the columns carry the facts' field names."""
    values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in overrides}
    return cls(**values, **overrides)
