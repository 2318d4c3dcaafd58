"""Structured reports through the one ingest path, sent by dcmtk's storescu: a TID 1500
measurement report, a CT dose report and an Encapsulated PDF become Observations and
DiagnosticReports at once (acknowledged means searchable), linked to their ImagingStudy, their
Patient and the order of their accession; a resend changes nothing; a correction updates the
same resources and drops what it no longer holds. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from facade.wiring import Services
from tests.fhir_schema import assert_valid_r4
from tests.hl7_samples import orm
from tests.mapping.dicom.sr.factories import PDF_BYTES, ct_dose_sr, encapsulated_pdf, tid1500
from tests.smart import bearer
from tests.tools import require_tool


@pytest.fixture
def fhir(live_http: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{live_http}/fhir", timeout=30, headers=bearer(token))


def part10(ds: Dataset, folder: Path, *, study: str, accession: str = "", patient: str = "PAT-1") -> Path:
    """`ds` as a file a modality would send: patient, study, series, file meta."""
    ds.PatientID, ds.PatientName = patient, "Doe^Jane"
    ds.StudyInstanceUID, ds.AccessionNumber = study, accession
    if "SeriesInstanceUID" not in ds:
        ds.SeriesInstanceUID = generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def storescu(port: int, *files: Path) -> None:
    done = subprocess.run(
        [
            require_tool("storescu"),
            "-R",  # propose the files' own SOP classes (the default list lacks 3D SR and dose SR)
            "-aet",
            "MODALITY1",
            "-aec",
            "FACADE",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr


def search(fhir: httpx.Client, path: str, **params: str) -> list[dict[str, Any]]:
    bundle = fhir.get(path, params={"_count": "100", **params}).raise_for_status().json()
    assert_valid_r4(bundle)
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_a_measurement_report_becomes_observations_at_once(
    port: int, fhir: httpx.Client, services: Services, tmp_path: Path
) -> None:
    assert b"MSA|AA|" in services.hl7_inbox.receive(orm(accession="ACC-SR").encode(), "127.0.0.1:1")
    study = generate_uid()
    sent = part10(tid1500(), tmp_path, study=study, accession="ACC-SR")
    storescu(port, sent)
    observations = search(fhir, "/Observation", **{"derived-from": f"ImagingStudy/{study}"})
    values = sorted(str(o["valueQuantity"]["value"]) for o in observations if "valueQuantity" in o)
    assert values == ["1.625", "120.0", "13.25", "42.5", "7.5"]
    (report,) = search(fhir, "/DiagnosticReport", patient=observations[0]["subject"]["reference"])
    assert report["imagingStudy"] == [{"reference": f"ImagingStudy/{study}"}]
    (order,) = search(fhir, "/ServiceRequest", identifier="ACC-SR")
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{order['id']}"}]
    study_body = fhir.get(f"/ImagingStudy/{study}").json()
    assert report["subject"] == study_body["subject"]
    included = fhir.get(
        "/DiagnosticReport", params={"_id": report["id"], "_include": "DiagnosticReport:result"}
    ).json()
    assert {e["resource"]["resourceType"] for e in included["entry"]} == {"DiagnosticReport", "Observation"}
    mean = search(
        fhir, "/Observation", **{"value-quantity": "42.5", "subject": report["subject"]["reference"]}
    )
    assert len(mean) == 1

    before = {o["id"]: o["meta"]["versionId"] for o in search(fhir, "/Observation")}
    storescu(port, sent)  # the same again
    assert {o["id"]: o["meta"]["versionId"] for o in search(fhir, "/Observation")} == before


def test_corrections_update_the_same_resources_along_the_chain(
    port: int, fhir: httpx.Client, tmp_path: Path
) -> None:
    study = generate_uid()
    first = ct_dose_sr(dlp="1234.50", sop_uid=generate_uid())
    storescu(port, part10(first, tmp_path, study=study))
    (dose,) = search(fhir, "/Observation", code="http://loinc.org|73569-6")
    (component,) = [c for c in dose["component"] if c["code"]["coding"][0]["code"] == "113813"]
    assert component["valueQuantity"]["value"] == 1234.50
    assert b'"value":1234.50' in fhir.get(f"/Observation/{dose['id']}").content  # as written
    (report,) = search(fhir, "/DiagnosticReport")

    corrected = ct_dose_sr(dlp="1200.00", sop_uid=generate_uid())
    corrected.PredecessorDocumentsSequence = [_reference(study, first)]
    storescu(port, part10(corrected, tmp_path, study=study))
    (again,) = search(fhir, "/Observation", code="http://loinc.org|73569-6")
    assert again["id"] == dose["id"] and again["meta"]["versionId"] == "2"
    (report_again,) = search(fhir, "/DiagnosticReport")
    assert report_again["id"] == report["id"]
    uids = {i["value"] for i in report_again["identifier"]}
    assert {f"urn:oid:{first.SOPInstanceUID}", f"urn:oid:{corrected.SOPInstanceUID}"} <= uids

    third = ct_dose_sr(dlp="1100.00", sop_uid=generate_uid())  # corrects the correction
    third.PredecessorDocumentsSequence = [_reference(study, corrected)]
    storescu(port, part10(third, tmp_path, study=study))
    (dose3,) = search(fhir, "/Observation", code="http://loinc.org|73569-6")
    assert dose3["id"] == dose["id"] and dose3["meta"]["versionId"] == "3"


def test_a_pdf_becomes_a_report_with_its_document(port: int, fhir: httpx.Client, tmp_path: Path) -> None:
    study = generate_uid()
    storescu(port, part10(encapsulated_pdf(), tmp_path, study=study))
    (report,) = search(fhir, "/DiagnosticReport", **{"_lastUpdated": "gt2000-01-01"})
    (form,) = [f for f in report["presentedForm"] if f["contentType"] == "application/pdf"]
    assert base64.b64decode(form["data"]) == PDF_BYTES
    assert report["imagingStudy"] == [{"reference": f"ImagingStudy/{study}"}]


def _reference(study: str, document: Dataset) -> Dataset:
    sop = Dataset()
    sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID = document.SOPClassUID, document.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = document.SeriesInstanceUID
    series.ReferencedSOPSequence = [sop]
    item = Dataset()
    item.StudyInstanceUID = study
    item.ReferencedSeriesSequence = [series]
    return item


def test_a_correction_without_a_measurement_drops_its_observation(
    port: int, fhir: httpx.Client, tmp_path: Path
) -> None:
    study = generate_uid()
    first = tid1500(sop_uid=generate_uid())
    storescu(port, part10(first, tmp_path, study=study))
    (length,) = search(fhir, "/Observation", **{"value-quantity": "7.5"})
    corrected = tid1500(sop_uid=generate_uid())
    (measurements,) = [
        i for i in corrected.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010"
    ]
    measurements.ContentSequence = measurements.ContentSequence[:-1]  # the "Lesion 2" group is gone
    corrected.PredecessorDocumentsSequence = [_reference(study, first)]
    storescu(port, part10(corrected, tmp_path, study=study))
    assert search(fhir, "/Observation", **{"value-quantity": "7.5"}) == []
    assert fhir.get(f"/Observation/{length['id']}").status_code == 410
    assert len(search(fhir, "/Observation", **{"value-quantity": "42.5"})) == 1
    (report,) = search(fhir, "/DiagnosticReport")
    assert all(
        fhir.get(r["reference"].replace("Observation/", "/Observation/")).status_code == 200
        for r in report["result"]
    )
