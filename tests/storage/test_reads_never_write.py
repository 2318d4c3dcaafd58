"""Reads never write: a read or search shows the versions the index implies without storing
them, and the publisher later stores exactly those versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from facade.wiring import Services
from storage.dicom_index.models import PatientRow, StudyRow
from storage.errors import NotFound
from storage.fhir_store.models import (
    FhirResourceRow,
    FhirVersionRow,
    SearchDate,
    SearchReference,
    SearchString,
    SearchToken,
)
from storage.fhir_store.visibility import ALL
from tests.archive import patient_id_of, store
from tests.dicom_factory import new_uid

QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    ("ImagingStudy", []),
    ("ImagingStudy", [("modality", "CT")]),
    ("ImagingStudy", [("modality:not", "CT"), ("_sort", "-started")]),
    ("ImagingStudy", [("bodysite:missing", "true"), ("_include", "ImagingStudy:patient")]),
    ("ImagingStudy", [("started", "ge2025-01-01"), ("_total", "accurate")]),
    ("ImagingStudy", [("_lastUpdated", "gt2000-01-01"), ("_count", "1"), ("_offset", "1")]),
    ("Patient", [("name", "bob")]),
    ("Patient", [("gender", "male"), ("_summary", "count")]),
    ("Patient", [("_sort", "birthdate")]),
]


def _archive(services: Services, tmp_path: Path) -> tuple[str, str]:
    a, b = new_uid(), new_uid()
    series = new_uid()
    for n in (1, 2):
        store(services, tmp_path, study_uid=a, series_uid=series, instance_number=n)
    store(
        services,
        tmp_path,
        study_uid=b,
        series_uid=new_uid(),
        modality="CT",
        patient_id="PID-0002",
        patient_name="Probe^Bob",
        StudyDate="20250110",
        PatientSex="M",
        BodyPartExamined="CHEST",
    )
    return a, b


def _written(services: Services) -> dict[str, Any]:
    """Everything a read could have written: the FHIR store and the publication marks."""
    with services.db.read() as s:
        counts = {
            t.__tablename__: s.scalar(select(func.count()).select_from(t))
            for t in (FhirResourceRow, FhirVersionRow, SearchToken, SearchString, SearchDate, SearchReference)
        }
        marks = sorted(s.execute(select(StudyRow.study_uid, StudyRow.published_seq)).all())
        marks += sorted(s.execute(select(PatientRow.fhir_id, PatientRow.published_seq)).all())
    return {"counts": counts, "marks": marks}


def _everything_read(services: Services, a: str, b: str) -> list[Any]:
    search = services.search
    seen: list[Any] = []
    for study in (a, b):
        current = search.read("ImagingStudy", study, visibility=ALL)
        seen.append(current.to_json())
        seen.append(search.vread("ImagingStudy", study, str(current.version_id), visibility=ALL).to_json())
        seen.append([v.to_json() for v in search.history("ImagingStudy", study, visibility=ALL)])
        patient = patient_id_of(services, study)
        seen.append(search.read("Patient", patient, visibility=ALL).to_json())
        seen.append([v.to_json() for v in search.history("Patient", patient, visibility=ALL)])
    for res_type, pairs in QUERIES:
        result = search.search(search.parse(res_type, pairs), visibility=ALL)
        seen.append(
            (result.total, [r.to_json() for r in result.matches], [r.to_json() for r in result.included])
        )
    return seen


def test_reads_and_searches_write_nothing(services: Services, tmp_path: Path) -> None:
    a, b = _archive(services, tmp_path)
    before = _written(services)
    shown = _everything_read(services, a, b)
    assert _written(services) == before
    assert shown[0]["numberOfInstances"] == 2  # every committed instance, though nothing was published


def test_publishing_stores_what_reads_showed(services: Services, tmp_path: Path) -> None:
    a, b = _archive(services, tmp_path)
    shown = _everything_read(services, a, b)
    assert services.publisher.pending() > 0
    assert _everything_read(services, a, b) == shown  # same ids, versions, bodies, lastUpdated, order
    store(services, tmp_path, study_uid=a, series_uid=new_uid(), series_number=2)  # a changes again
    again = services.search.read("ImagingStudy", a, visibility=ALL)
    assert again.version_id == int(shown[0]["meta"]["versionId"]) + 1
    services.publisher.pending()
    assert services.search.read("ImagingStudy", a, visibility=ALL).to_json() == again.to_json()


def test_retrieves_write_nothing(services: Services, tmp_path: Path) -> None:
    """WADO-RS under a patient compartment derives the unpublished ImagingStudy to decide, in a
    read-only transaction: nothing is stored."""
    a, b = _archive(services, tmp_path)
    before = _written(services)
    scopes = services.auth.parse_scopes("patient/ImagingStudy.rs")
    visibility = services.auth.rules.build(scopes, patient_id_of(services, a), None, "r")
    retrieve = services.retrieve
    found = retrieve.instances(a, visibility=visibility)
    assert len(found) == 2
    assert (
        retrieve.metadata(found[0], lambda tag: f"bulk/{tag:08X}")["7FE00010"]["BulkDataURI"]
        == "bulk/7FE00010"
    )
    assert b"".join(c for _, c in retrieve.bulk_parts(found[0], retrieve.bulk_value(found[0], 0x7FE00010)))
    with pytest.raises(NotFound):
        retrieve.instances(b, visibility=visibility)
    assert _written(services) == before
