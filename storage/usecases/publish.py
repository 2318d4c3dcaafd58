"""Publish: store the FHIR resources derived from the DICOM index.

Ingest only marks a study (and its patient) as changed. Reads show what the index implies
without writing it (`storage.usecases.derived`); publishing stores that same version. The settle
worker publishes once a study has been quiet for `stable_age` (Orthanc's "stable study");
`facade import` publishes everything it stored. A version published while its study is still
receiving is provisional (see `storage.fhir_store.store`), so such versions coalesce.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mapping.fhir.endpoint import dicomweb_endpoint
from storage.clock import Clock, utcnow
from storage.db import Database
from storage.dicom_index import reader as index_reader
from storage.fhir_store.store import FhirStore
from storage.usecases.derived import Current, Derivation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishConfig:
    stable_age: timedelta
    base_url: str


class Publisher:
    def __init__(
        self,
        db: Database,
        store: FhirStore,
        derivation: Derivation,
        config: PublishConfig,
        now: Clock = utcnow,
    ) -> None:
        self._db, self._store, self._derive, self._config, self._now = db, store, derivation, config, now

    def endpoint(self) -> None:
        """The Endpoint every ImagingStudy points at; a new version when the base URL changed."""
        body = dicomweb_endpoint(self._config.base_url).model_dump(mode="json", exclude_none=True)
        with self._db.write() as session:
            self._store.put(session, body, now=self._now())

    def pending(self, *, settled_only: bool = False, limit: int = 200) -> int:
        """Publish changed studies and patients (all, or only those quiet for `stable_age`);
        settle provisional versions whose study has gone quiet. Returns how many were written."""
        quiet_since = self._now() - self._config.stable_age
        with self._db.read() as session:
            idle = not index_reader.anything_pending(session) and not (
                settled_only and self._store.provisional_ids(session, "ImagingStudy", limit=1)
            )
        if idle:
            return 0
        return self._db.transact(lambda session: self._pending(session, quiet_since, settled_only, limit))

    def _pending(self, session: Session, quiet_since: datetime, settled_only: bool, limit: int) -> int:
        patients = index_reader.pending_patients(session, limit=limit, lock=True, skip_locked=settled_only)
        for patient in patients:
            self._publish(session, self._derive.patient(session, patient), provisional=False)
            index_reader.mark_patient_published(session, patient.change)
        studies = index_reader.pending_studies(
            session,
            quiet_since=quiet_since if settled_only else None,
            limit=limit,
            lock=True,
            skip_locked=settled_only,
        )
        for study in studies:
            settled = study.change.changed_at <= quiet_since
            self._publish(session, self._derive.study(session, study), provisional=not settled)
            index_reader.mark_study_published(session, study.change)
        return len(patients) + len(studies) + self._settle(session, quiet_since)

    def _settle(self, session: Session, quiet_since: datetime) -> int:
        provisional = self._store.provisional_ids(session, "ImagingStudy")
        quiet = index_reader.quiet(session, provisional, quiet_since)
        for uid in quiet:
            self._store.settle(session, "ImagingStudy", uid)
        return len(quiet)

    def _publish(self, session: Session, current: Current, *, provisional: bool) -> None:
        """Store the version a read shows now: same id, body and lastUpdated."""
        shown = current.shown
        if shown is None:
            return
        if shown.body is None:
            self._store.delete(
                session, shown.res_type, shown.res_id, now=shown.last_updated, version_id=shown.version_id
            )
        else:
            self._store.put(
                session,
                shown.body,
                now=shown.last_updated,
                provisional=provisional,
                version_id=shown.version_id,
                new=current.stored is None,  # derived from a read in this transaction, the row locked
                index_rows=current.index_rows,
            )
        if shown.res_type == "ImagingStudy" and current.unpublished:
            log.info(
                "publish.imaging_study",
                extra={
                    "study_uid": shown.res_id,
                    "version_id": shown.version_id,
                    "instances": (shown.body or {}).get("numberOfInstances", 0),
                },
            )
