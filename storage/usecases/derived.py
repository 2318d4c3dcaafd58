"""The FHIR resources derived from the DICOM index (ImagingStudy, Patient), as the index says now.

The publisher stores them (`storage.usecases.publish`); until it has, a read shows the version
the index implies, without writing it:

- its version id is the stored one plus the number of index changes since that was published,
  so every change of content has a version id of its own, and the content behind a version id
  never changes (ETags stay truthful);
- its lastUpdated is when the index changed (never before the stored version's);
- content equal to the stored version's is the stored version; a study with no instance left
  (a replacement moved them to another study) reads as deleted, stored or not.

The publisher stores exactly this version (id, body, lastUpdated), so what a read showed is what
history keeps.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial

from sqlalchemy.orm import Session

from mapping.fhir.endpoint import DICOMWEB_ENDPOINT_ID
from mapping.fhir.imaging_study import imaging_study_from_index
from mapping.fhir.patient import patient_from_index
from storage.dicom_index import reader as index_reader
from storage.dicom_index.reader import Change, IndexedPatient, IndexedStudy
from storage.fhir_store.store import FhirStore, IndexRows, Json, StoredResource, without_version_meta
from storage.mpps import store as performed_steps
from storage.orders import store as orders_store

DERIVED_TYPES = ("ImagingStudy", "Patient")


@dataclass(frozen=True)
class Current:
    """A derived resource: the version stored and the one the index implies (`shown`; None when
    it never existed)."""

    stored: StoredResource | None
    shown: StoredResource | None
    change: Change
    index_rows: IndexRows | None = None  # of `shown`, when it is unpublished and not a deletion

    @property
    def unpublished(self) -> bool:
        """The index implies a version the store does not hold yet."""
        return self.shown is not self.stored


class Derivation:
    """Derives the current ImagingStudy / Patient inside the caller's transaction.

    `pending` (what a search overlays) remembers the versions it derived: every index change
    bumps `change_seq`, so (type, id, change_seq, published_seq) names one version, and a search
    during ingest derives only what changed since the last one.
    """

    def __init__(self, store: FhirStore, site_zone: tzinfo, *, remembered: int = 256) -> None:
        self._store, self._zone = store, site_zone
        self._remembered: OrderedDict[tuple[str, str, int, int], Current] = OrderedDict()
        self._capacity = remembered
        self._lock = threading.Lock()

    def of(self, session: Session, res_type: str, res_id: str) -> Current | None:
        """The derived resource `res_type/res_id`; None when it is not derived from the index."""
        if res_type == "ImagingStudy":
            study = index_reader.study(session, res_id)
            return self.study(session, study) if study is not None else None
        if res_type == "Patient":
            patient = index_reader.patient(session, res_id)
            return self.patient(session, patient) if patient is not None else None
        return None

    def pending(self, session: Session, res_type: str) -> list[Current]:
        """Every resource of `res_type` whose current version is not published yet (the stored
        version's provisional flag may be stale here: use `shown`)."""
        found: list[Current] = []
        if res_type == "ImagingStudy":
            for study in index_reader.pending_studies(session):
                key = (res_type, study.facts.study_uid, study.change.change_seq, study.change.published_seq)
                found.append(self._remember(key, partial(self.study, session, study)))
        elif res_type == "Patient":
            for patient in index_reader.pending_patients(session):
                key = (res_type, patient.fhir_id, patient.change.change_seq, patient.change.published_seq)
                found.append(self._remember(key, partial(self.patient, session, patient)))
        return [c for c in found if c.unpublished]

    def _remember(self, key: tuple[str, str, int, int], derive: Callable[[], Current]) -> Current:
        with self._lock:
            known = self._remembered.get(key)
            if known is not None:
                self._remembered.move_to_end(key)
                return known
        current = derive()
        with self._lock:
            self._remembered[key] = current
            while len(self._remembered) > self._capacity:
                self._remembered.popitem(last=False)
        return current

    def study(self, session: Session, study: IndexedStudy) -> Current:
        uid = study.facts.study_uid
        stored = self._store.read(session, "ImagingStudy", uid)
        if not study.change.unpublished:
            return Current(stored, stored, study.change)
        views = index_reader.series_views(session, uid)
        body = None
        if views:
            resource = imaging_study_from_index(
                study.facts,
                views,
                resource_id=uid,
                subject=f"Patient/{study.patient_fhir_id}",
                endpoint=f"Endpoint/{DICOMWEB_ENDPOINT_ID}",
                site_zone=self._zone,
                orders=orders_store.bases_of_study(session, uid, study.facts.accession),
                procedure=performed_steps.procedure_of_study(session, uid),
            )
            body = resource.model_dump(mode="json", exclude_none=True)
        return self._current("ImagingStudy", uid, stored, body, study.change)

    def patient(self, session: Session, patient: IndexedPatient) -> Current:
        stored = self._store.read(session, "Patient", patient.fhir_id)
        if not patient.change.unpublished:
            return Current(stored, stored, patient.change)
        resource = patient_from_index(
            patient.facts,
            resource_id=patient.fhir_id,
            replaced_by=patient.replaced_by,
            replaces=patient.replaces,
        )
        body = resource.model_dump(mode="json", exclude_none=True)
        return self._current("Patient", patient.fhir_id, stored, body, patient.change)

    def _current(
        self, res_type: str, res_id: str, stored: StoredResource | None, body: Json | None, change: Change
    ) -> Current:
        if body is not None:
            body = without_version_meta(body)
            if stored is not None and stored.body == body:
                return Current(stored, stored, change)
        elif stored is not None and stored.body is None:  # deleted already
            return Current(stored, stored, change)
        version = (stored.version_id if stored is not None else 0) + change.unpublished
        when = max(change.changed_at, stored.last_updated) if stored is not None else change.changed_at
        shown = StoredResource(res_type, res_id, version, when, body)
        return Current(stored, shown, change, self._store.index_rows(body) if body is not None else None)
