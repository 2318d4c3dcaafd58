"""Publish: bring the FHIR resources derived from the DICOM index up to date.

Ingest only marks a study (and its patient) as changed. A read or search publishes
what it is about to return first, so it always shows every committed instance; the
settle worker publishes the rest once a study has been quiet for `stable_age`
(Orthanc's "stable study"). Versions published while a study is still receiving
are provisional (see `storage.fhir_store.store`), so they coalesce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mapping.dicom.facts import Code, InstanceFacts, PatientFacts, SeriesFacts, StudyFacts
from mapping.fhir.endpoint import DICOMWEB_ENDPOINT_ID, dicomweb_endpoint
from mapping.fhir.imaging_study import SeriesView, imaging_study_from_index
from mapping.fhir.patient import patient_from_index
from storage.clock import utcnow
from storage.db import Database
from storage.dicom_index.models import InstanceRow, PatientRow, SeriesRow, StudyRow
from storage.fhir_store.models import FhirResourceRow
from storage.fhir_store.store import FhirStore

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger(__name__)

DERIVED_TYPES = ("ImagingStudy", "Patient")
F = TypeVar("F", bound="DataclassInstance")


@dataclass(frozen=True)
class PublishConfig:
    site_zone: tzinfo
    stable_age: timedelta
    base_url: str


class Publisher:
    def __init__(
        self, db: Database, store: FhirStore, config: PublishConfig, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._db, self._store, self._config, self._now = db, store, config, now

    def endpoint(self) -> None:
        """The Endpoint every ImagingStudy points at; a new version when the base URL changed."""
        body = dicomweb_endpoint(self._config.base_url).model_dump(mode="json", exclude_none=True)
        with self._db.write() as session:
            self._store.put(session, body, now=self._now())

    def imaging_study(self, resource_id: str) -> None:
        """Publish one study (and its patient first) if it changed since last published (read path)."""
        with self._db.read() as session:
            found = session.execute(
                select(
                    StudyRow.published_seq,
                    StudyRow.change_seq,
                    PatientRow.fhir_id,
                    PatientRow.published_seq.label("patient_published"),
                    PatientRow.change_seq.label("patient_changed"),
                )
                .join(PatientRow, PatientRow.pk == StudyRow.patient_pk)
                .where(StudyRow.study_uid == resource_id)
            ).first()
        if found is None:
            return
        if found.patient_published < found.patient_changed:
            self.patient(found.fhir_id)
        if found.published_seq < found.change_seq:
            self._db.transact(lambda session: self._locked_study(session, resource_id))

    def _locked_study(self, session: Session, resource_id: str) -> None:
        study = session.scalar(select(StudyRow).where(StudyRow.study_uid == resource_id).with_for_update())
        if study is not None and study.published_seq < study.change_seq:
            self._publish_study(session, study, self._now())

    def patient(self, resource_id: str) -> None:
        """Publish one patient if it changed since it was last published (read path)."""
        with self._db.read() as session:
            pending = session.scalar(
                select(PatientRow.pk).where(
                    PatientRow.fhir_id == resource_id, PatientRow.published_seq < PatientRow.change_seq
                )
            )
        if pending is not None:
            self._db.transact(lambda session: self._locked_patient(session, resource_id))

    def _locked_patient(self, session: Session, resource_id: str) -> None:
        patient = session.scalar(
            select(PatientRow).where(PatientRow.fhir_id == resource_id).with_for_update()
        )
        if patient is not None and patient.published_seq < patient.change_seq:
            self._publish_patient(session, patient, self._now())

    def pending(self, *, settled_only: bool = False, limit: int = 200) -> int:
        """Publish changed studies and patients (all, or only those quiet for `stable_age`);
        settle provisional versions whose study has gone quiet. Returns how many were written."""
        now = self._now()
        quiet_since = now - self._config.stable_age
        if not self._anything_pending(settled_only):
            return 0
        return self._db.transact(
            lambda session: self._pending(session, now, quiet_since, settled_only, limit)
        )

    def _anything_pending(self, settled_only: bool) -> bool:
        with self._db.read() as session:
            if (
                session.scalar(
                    select(PatientRow.pk).where(PatientRow.published_seq < PatientRow.change_seq).limit(1)
                )
                is not None
            ):
                return True
            if (
                session.scalar(
                    select(StudyRow.pk).where(StudyRow.published_seq < StudyRow.change_seq).limit(1)
                )
                is not None
            ):
                return True
            return (
                settled_only
                and session.scalar(
                    select(FhirResourceRow.res_id)
                    .where(FhirResourceRow.res_type == "ImagingStudy", FhirResourceRow.provisional.is_(True))
                    .limit(1)
                )
                is not None
            )

    def _pending(
        self, session: Session, now: datetime, quiet_since: datetime, settled_only: bool, limit: int
    ) -> int:
        done = 0
        patients: list[PatientRow] = _lock_pending(
            session,
            select(PatientRow).where(PatientRow.published_seq < PatientRow.change_seq),
            limit,
            skip_locked=settled_only,
        )
        for patient in patients:
            self._publish_patient(session, patient, now)
        done += len(patients)
        query = select(StudyRow).where(StudyRow.published_seq < StudyRow.change_seq)
        if settled_only:
            query = query.where(StudyRow.changed_at <= quiet_since)
        studies: list[StudyRow] = _lock_pending(session, query, limit, skip_locked=settled_only)
        for study in studies:
            self._publish_study(session, study, now)
        done += len(studies)
        done += self._settle(session, quiet_since)
        return done

    def _settle(self, session: Session, quiet_since: datetime) -> int:
        provisional = session.scalars(
            select(FhirResourceRow.res_id).where(
                FhirResourceRow.res_type == "ImagingStudy", FhirResourceRow.provisional.is_(True)
            )
        ).all()
        settled = 0
        for uid in provisional:
            study = session.scalar(select(StudyRow).where(StudyRow.study_uid == uid))
            if study is None or (study.changed_at <= quiet_since and study.published_seq == study.change_seq):
                self._store.settle(session, "ImagingStudy", uid)
                settled += 1
        return settled

    def _publish_patient(self, session: Session, patient: PatientRow, now: datetime) -> None:
        resource = patient_from_index(patient_facts(patient), resource_id=patient.fhir_id)
        self._store.put(session, resource.model_dump(mode="json", exclude_none=True), now=now)
        patient.published_seq = patient.change_seq

    def _publish_study(self, session: Session, study: StudyRow, now: datetime) -> None:
        seq = study.change_seq
        views = series_views(session, study)
        if not views:
            self._store.delete(session, "ImagingStudy", study.study_uid, now=now)
        else:
            resource = imaging_study_from_index(
                study_facts(study),
                views,
                resource_id=study.study_uid,
                subject=f"Patient/{study.patient.fhir_id}",
                endpoint=f"Endpoint/{DICOMWEB_ENDPOINT_ID}",
                site_zone=self._config.site_zone,
            )
            settled = study.changed_at <= now - self._config.stable_age
            stored = self._store.put(
                session, resource.model_dump(mode="json", exclude_none=True), now=now, provisional=not settled
            )
            log.info(
                "publish.imaging_study",
                extra={
                    "study_uid": study.study_uid,
                    "version_id": stored.version_id,
                    "instances": study.num_instances,
                },
            )
        study.published_seq = seq


def _lock_pending(session: Session, query: Select[Any], limit: int, *, skip_locked: bool) -> list[Any]:
    """Rows to publish, locked; the background worker skips rows another process holds."""
    return list(session.scalars(query.limit(limit).with_for_update(skip_locked=skip_locked)).unique())


def series_views(session: Session, study: StudyRow) -> list[SeriesView]:
    """The study's series and instances in DICOM order (series number, instance number, UID)."""
    series = session.scalars(select(SeriesRow).where(SeriesRow.study_pk == study.pk)).all()
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
            views.append(SeriesView(series_facts(s), [instance_facts(i) for i in rows]))
    return views


def _facts(cls: type[F], row: object, **overrides: object) -> F:
    """Index row -> facts: the columns carry the facts' field names."""
    values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in overrides}
    return cls(**values, **overrides)


def patient_facts(row: PatientRow) -> PatientFacts:
    return _facts(PatientFacts, row)


def study_facts(row: StudyRow) -> StudyFacts:
    codes = tuple(Code(c.get("system"), c["code"] or "", c.get("display")) for c in row.procedure_codes or [])
    return _facts(StudyFacts, row, procedure_codes=codes)


def series_facts(row: SeriesRow) -> SeriesFacts:
    return _facts(SeriesFacts, row)


def instance_facts(row: InstanceRow) -> InstanceFacts:
    return _facts(InstanceFacts, row)
