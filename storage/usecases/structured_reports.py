"""Structured reports in the one ingest path: an arriving DICOM SR (TID 1500 measurements, a
radiation dose report, a text report) or Encapsulated PDF becomes its FHIR Observations and
DiagnosticReport (`mapping.fhir.sr_results`) in the instance's own index transaction, so that
an acknowledged SR is already searchable as FHIR, and an SR that is refused leaves nothing.

- Context: the Patient of the SR's study (as the index has just resolved it), the ImagingStudy
  (its Study Instance UID), and the orders of the study (Study Instance UID or accession) as
  `basedOn`.
- A re-sent SR maps to the same ids: the store versions them, nothing is duplicated. A
  correction (Predecessor Documents Sequence) updates the resources of the document it
  replaces: its ids are anchored on the first document of the chain, found from the report
  whose identifiers name a predecessor (each report keeps the UIDs of its chain as identifiers).
  Resources of the replaced version that the correction no longer holds are deleted.
- The dataset is read whole before the file moves into the blob store (`prepare`): ingest reads
  headers with large values deferred to the file.
- Reports from SRs do not go out as ORU: they are the modality's or a workstation's documents,
  not the radiologist's report (dose reports would flood the RIS).
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from mapping.dicom.sr.kind import RESULT_CLASSES, sr_kind
from mapping.fhir.search_params import PARAM_TYPES
from mapping.fhir.sr_common import resource_id, uid_identifier
from mapping.fhir.sr_results import SrContext, map_sr, predecessor_uids
from storage.dicom_index import reader as index_reader
from storage.fhir_store import query as search_sql
from storage.fhir_store.criteria import parse_search
from storage.fhir_store.store import FhirStore
from storage.orders import store as orders

log = logging.getLogger(__name__)
Json = dict[str, Any]
_DICOM_UID = "urn:dicom:uid"


class StructuredReports:
    def __init__(self, store: FhirStore, site_zone: tzinfo) -> None:
        self._store, self._zone = store, site_zone

    @staticmethod
    def may_map(sop_class_uid: str) -> bool:
        """Whether an instance of this SOP class may be a result document (`prepare` reads it)."""
        return sop_class_uid in RESULT_CLASSES

    def prepare(self, sop_class_uid: str, path: Path) -> Dataset | None:
        """The whole data set of a result document (read from `path` while it is still there),
        None for any other instance (nothing is read unless the SOP class may be one)."""
        if sop_class_uid not in RESULT_CLASSES:
            return None
        ds = dcmread(path, force=False)
        return ds if sr_kind(ds) is not None else None

    def publish(self, conn: Connection, ds: Dataset, study_uid: str, accession: str, now: datetime) -> int:
        """Map `ds` and store its resources inside the caller's transaction (`conn`); how many."""
        session = Session(bind=conn)
        try:
            count = self._publish(session, ds, study_uid, accession, now)
            session.flush()
        finally:
            session.expunge_all()
        return count

    def _publish(self, session: Session, ds: Dataset, study_uid: str, accession: str, now: datetime) -> int:
        study = index_reader.study(session, study_uid)
        if study is None:  # indexed in this very transaction: cannot happen
            raise AssertionError("the SR's study is not in the index")
        bases = orders.bases_of_study(session, study_uid, accession)
        chain = [uid for uid in predecessor_uids(ds) if uid]
        anchor = self._anchor(session, chain, now)
        ctx = SrContext(
            patient=f"Patient/{study.patient_fhir_id}",
            imaging_study=study_uid,
            now=now,
            based_on=tuple(f"ServiceRequest/{b.service_request}" for b in bases),
            site_zone=self._zone,
            anchor_uid=anchor,
        )
        mapped = map_sr(ds, ctx)
        if mapped.warnings:
            log.info("sr.warnings", extra={"count": len(mapped.warnings), "kind": mapped.kind})
        report = next((r for r in mapped.resources if r["resourceType"] == "DiagnosticReport"), None)
        before: Json | None = None
        if report is not None:
            current = self._store.read(session, "DiagnosticReport", report["id"])
            before = current.body if current is not None else None
            _keep_chain(report, [*chain, anchor], before)
        for resource in mapped.resources:
            self._store.put(session, resource, now=now)
        if before is not None:
            fresh = {(r["resourceType"], r["id"]) for r in mapped.resources}
            for res_type, res_id in self._produced(session, before) - fresh:
                self._store.delete(session, res_type, res_id, now=now)
        return len(mapped.resources)

    def _anchor(self, session: Session, chain: list[str], now: datetime) -> str:
        """The first document of the chain a correction continues: the UID among the identifiers of
        a predecessor's report that its id is made from; '' when none is known."""
        for uid in chain:
            ident = uid_identifier(uid)
            if ident is None:
                continue
            pairs = [("identifier", f"{_DICOM_UID}|{ident['value']}")]
            query = parse_search("DiagnosticReport", pairs, site_zone=self._zone, now=now)
            for res_id in session.scalars(
                search_sql.matching(query, PARAM_TYPES["DiagnosticReport"]).limit(5)
            ):
                found = self._store.read(session, "DiagnosticReport", res_id)
                for candidate in _uids(found.body if found is not None else None):
                    if resource_id(candidate, "report") == res_id:
                        return candidate
        return ""

    def _produced(self, session: Session, report: Json) -> set[tuple[str, str]]:
        """The Observations a stored report of an SR stands for: its results and their members."""
        out: set[tuple[str, str]] = set()
        todo = [r.get("reference", "") for r in report.get("result", [])]
        while todo and len(out) < 100_000:
            kind, _, res_id = str(todo.pop()).partition("/")
            if kind != "Observation" or not res_id or ("Observation", res_id) in out:
                continue
            out.add(("Observation", res_id))
            found = self._store.read(session, "Observation", res_id)
            if found is not None and found.body is not None:
                todo += [m.get("reference", "") for m in found.body.get("hasMember", [])]
        return out


def _uids(report: Json | None) -> list[str]:
    return [
        str(i["value"]).removeprefix("urn:oid:")
        for i in (report or {}).get("identifier", [])
        if i.get("system") == _DICOM_UID and i.get("value")
    ]


def _keep_chain(report: Json, chain: list[str], before: Json | None) -> None:
    """The report's identifiers: its own document's UID, then every UID of its chain (what it
    replaces, and what the version it replaces named), each once."""
    have = set(_uids(report))
    for uid in [*chain, *_uids(before)]:
        ident = uid_identifier(uid) if uid and uid not in have else None
        if ident is not None:
            report.setdefault("identifier", []).append(ident)
            have.add(uid)
