"""The FHIR R4 API over a real socket: read, vread, history, search, and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from facade.wiring import Services
from tests.archive import store
from tests.dicom_factory import new_uid
from tests.fhir_schema import assert_valid_r4
from tests.smart import bearer

FHIR_JSON = "application/fhir+json"


@pytest.fixture
def fhir(live_http: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{live_http}/fhir", timeout=30, headers=bearer(token))


@pytest.fixture
def two_studies(services: Services, tmp_path: Path) -> dict[str, str]:
    """Study A: MR, 2 series x 2 instances, knee; study B: CT, another patient, a year later."""
    a, b = new_uid(), new_uid()
    for series_number in (1, 2):
        series = new_uid()
        for n in (1, 2):
            store(
                services,
                tmp_path,
                study_uid=a,
                series_uid=series,
                series_number=series_number,
                instance_number=n,
                BodyPartExamined="KNEE",
                Laterality="R",
            )
    store(
        services,
        tmp_path,
        study_uid=b,
        series_uid=new_uid(),
        modality="CT",
        patient_id="PID-0002",
        patient_name="Probe^Bob",
        AccessionNumber="ACC-0002",
        StudyDate="20250110",
        PatientSex="M",
        PatientBirthDate="19800202",
    )
    return {"a": a, "b": b}


def test_metadata_is_a_truthful_r4_capability_statement(fhir: httpx.Client) -> None:
    r = fhir.get("/metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith(FHIR_JSON)
    cs = r.json()
    assert_valid_r4(cs)
    assert cs["fhirVersion"] == "4.0.1"
    resources = {res["type"]: res for res in cs["rest"][0]["resource"]}
    assert set(resources) == {
        "ImagingStudy",
        "Patient",
        "Endpoint",
        "Practitioner",
        "ServiceRequest",
        "Procedure",
        "DiagnosticReport",
        "Observation",
    }
    procedure = {p["name"] for p in resources["Procedure"]["searchParam"]}
    assert {"patient", "subject", "status", "date", "based-on", "identifier", "code"} <= procedure
    assert resources["Procedure"]["searchInclude"] == [
        "Procedure:patient",
        "Procedure:subject",
        "Procedure:based-on",
    ]
    names = {p["name"] for p in resources["ImagingStudy"]["searchParam"]}
    assert {
        "patient",
        "subject",
        "identifier",
        "started",
        "modality",
        "bodysite",
        "series",
        "dicom-class",
        "status",
        "_id",
        "_lastUpdated",
    } <= names
    assert resources["ImagingStudy"]["searchInclude"] == [
        "ImagingStudy:patient",
        "ImagingStudy:subject",
        "ImagingStudy:endpoint",
        "ImagingStudy:basedon",
    ]
    assert {p["name"] for p in resources["ServiceRequest"]["searchParam"]} >= {
        "patient",
        "identifier",
        "status",
    }


def test_read_imaging_study_patient_and_endpoint(fhir: httpx.Client, two_studies: dict[str, str]) -> None:
    study = fhir.get(f"/ImagingStudy/{two_studies['a']}").json()
    assert_valid_r4(study)
    assert study["identifier"][0] == {
        "use": "official",
        "system": "urn:dicom:uid",
        "value": f"urn:oid:{two_studies['a']}",
    }
    assert study["identifier"][1]["type"]["coding"][0]["code"] == "ACSN"
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (2, 4)
    assert study["modality"] == [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"}]
    assert study["started"] == "2024-03-05T10:15:00+01:00"
    series = study["series"][0]
    assert series["bodySite"]["system"] == "http://snomed.info/sct"
    assert series["laterality"]["code"] == "24028007"
    assert [i["number"] for i in series["instance"]] == [1, 2]
    patient = fhir.get(f"/{study['subject']['reference']}").json()
    assert_valid_r4(patient)
    assert patient["identifier"][0]["value"] == "PID-0001"
    assert patient["name"][0] == {"use": "official", "family": "Testperson", "given": ["Alice"]}
    endpoint = fhir.get(f"/{study['endpoint'][0]['reference']}").json()
    assert_valid_r4(endpoint)
    assert endpoint["connectionType"]["code"] == "dicom-wado-rs"


def test_etag_vread_and_not_modified(fhir: httpx.Client, two_studies: dict[str, str]) -> None:
    r = fhir.get(f"/ImagingStudy/{two_studies['b']}")
    etag = r.headers["etag"]
    assert etag == f'W/"{r.json()["meta"]["versionId"]}"'
    assert fhir.get(f"/ImagingStudy/{two_studies['b']}", headers={"If-None-Match": etag}).status_code == 304
    version = r.json()["meta"]["versionId"]
    assert fhir.get(f"/ImagingStudy/{two_studies['b']}/_history/{version}").json() == r.json()
    assert fhir.get(f"/ImagingStudy/{two_studies['b']}/_history/999").status_code == 404


def test_reads_show_every_committed_instance_and_versions_coalesce(
    fhir: httpx.Client, services: Services, tmp_path: Path
) -> None:
    study, series = new_uid(), new_uid()
    counts = []
    for n in range(1, 4):
        store(services, tmp_path, study_uid=study, series_uid=series, instance_number=n)
        counts.append(fhir.get(f"/ImagingStudy/{study}").json()["numberOfInstances"])
    assert counts == [1, 2, 3]
    history = fhir.get(f"/ImagingStudy/{study}/_history").json()
    assert_valid_r4(history)
    assert history["total"] == 1  # three provisional versions, two superseded before settling
    assert history["entry"][0]["resource"]["meta"]["versionId"] == "3"


def search(fhir: httpx.Client, res_type: str, **params: Any) -> dict[str, Any]:
    r = fhir.get(f"/{res_type}", params=params)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert_valid_r4(bundle)
    return bundle


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"modality": "MR"}, ["a"]),
        ({"modality": "http://dicom.nema.org/resources/ontology/DCM|CT"}, ["b"]),
        ({"modality": "MR,CT"}, ["a", "b"]),
        ({"modality:not": "MR"}, ["b"]),
        ({"identifier": "ACC-0002"}, ["b"]),
        ({"identifier": "|ACC-0001"}, ["a"]),  # an accession without issuer has no system
        ({"identifier:of-type": "http://terminology.hl7.org/CodeSystem/v2-0203|ACSN|ACC-0001"}, ["a"]),
        ({"started": "2024-03-05"}, ["a"]),
        ({"started": "ge2025-01-01"}, ["b"]),
        ({"started": "lt2025"}, ["a"]),
        ({"started": "sa2024-12-31"}, ["b"]),
        ({"bodysite": "http://snomed.info/sct|72696002"}, ["a"]),
        ({"bodysite:missing": "true"}, ["b"]),
        ({"status": "available"}, ["a", "b"]),
        ({"dicom-class": "urn:oid:1.2.840.10008.5.1.4.1.1.2"}, ["b"]),
    ],
)
def test_imaging_study_search(
    fhir: httpx.Client, two_studies: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    bundle = search(fhir, "ImagingStudy", _sort="_id", **params)
    assert sorted(ids(bundle)) == sorted(two_studies[k] for k in expected)
    assert bundle["total"] == len(expected)


def test_search_by_study_uid_series_and_patient(fhir: httpx.Client, two_studies: dict[str, str]) -> None:
    a = fhir.get(f"/ImagingStudy/{two_studies['a']}").json()
    assert ids(search(fhir, "ImagingStudy", identifier=f"urn:dicom:uid|urn:oid:{two_studies['a']}")) == [
        a["id"]
    ]
    assert ids(search(fhir, "ImagingStudy", series=a["series"][1]["uid"])) == [a["id"]]
    patient_id = a["subject"]["reference"].split("/")[1]
    assert ids(search(fhir, "ImagingStudy", patient=patient_id)) == [a["id"]]
    assert ids(search(fhir, "ImagingStudy", subject=f"Patient/{patient_id}")) == [a["id"]]


def test_include_patient(fhir: httpx.Client, two_studies: dict[str, str]) -> None:
    bundle = search(fhir, "ImagingStudy", modality="CT", _include="ImagingStudy:patient")
    assert ids(bundle) == [two_studies["b"]]
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [p["resourceType"] for p in included] == ["Patient"]
    assert included[0]["name"][0]["family"] == "Probe"


@pytest.mark.parametrize(
    ("params", "families"),
    [
        ({"family": "probe"}, ["Probe"]),
        ({"name": "ali"}, ["Testperson"]),
        ({"given": "Bob"}, ["Probe"]),
        ({"family:exact": "probe"}, []),
        ({"family:contains": "erso"}, ["Testperson"]),
        ({"birthdate": "1980-02-02"}, ["Probe"]),
        ({"birthdate": "lt1975"}, ["Testperson"]),
        ({"gender": "male"}, ["Probe"]),
        ({"identifier": "urn:facade:patient-id|PID-0001"}, ["Testperson"]),
    ],
)
def test_patient_search(
    fhir: httpx.Client, two_studies: dict[str, str], params: dict[str, str], families: list[str]
) -> None:
    bundle = search(fhir, "Patient", **params)
    assert sorted(e["resource"]["name"][0]["family"] for e in bundle.get("entry", [])) == families


def test_paging_sort_and_summary_count(fhir: httpx.Client, services: Services, tmp_path: Path) -> None:
    dates = ["20240101", "20240102", "20240103", "20240104", "20240105"]
    for day in dates:
        store(services, tmp_path, study_uid=new_uid(), series_uid=new_uid(), StudyDate=day)
    first = search(fhir, "ImagingStudy", _count=2, _sort="-started")
    assert first["total"] == 5
    seen = [e["resource"]["started"][:10] for e in first["entry"]]
    url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    while url:
        page = fhir.get(url).json()
        seen += [e["resource"]["started"][:10] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert seen == ["2024-01-05", "2024-01-04", "2024-01-03", "2024-01-02", "2024-01-01"]
    count = search(fhir, "ImagingStudy", _summary="count")
    assert count["total"] == 5 and "entry" not in count


def test_post_search(fhir: httpx.Client, two_studies: dict[str, str]) -> None:
    r = fhir.post("/ImagingStudy/_search", data={"modality": "CT"})
    assert r.status_code == 200
    assert ids(r.json()) == [two_studies["b"]]


def outcome(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert_valid_r4(body)
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code
    return str(body["issue"][0]["diagnostics"])


def test_refusals_are_operation_outcomes(fhir: httpx.Client, two_studies: dict[str, str]) -> None:
    assert "nonsense" in outcome(fhir.get("/ImagingStudy", params={"nonsense": "1"}), 400, "invalid")
    lenient = fhir.get(
        "/ImagingStudy", params={"nonsense": "1", "modality": "CT"}, headers={"Prefer": "handling=lenient"}
    )
    assert ids(lenient.json()) == [two_studies["b"]]
    outcome(fhir.get("/ImagingStudy/does-not-exist"), 404, "not-found")
    outcome(fhir.get("/Observation/1"), 404, "not-found")
    outcome(fhir.get("/ImagingStudy/bad_id!"), 400, "invalid")
    outcome(fhir.get("/ImagingStudy", params={"_format": "xml"}), 406, "not-supported")
    outcome(fhir.get("/ImagingStudy", headers={"Accept": "application/fhir+xml"}), 406, "not-supported")
    outcome(fhir.delete(f"/ImagingStudy/{two_studies['a']}"), 405, "not-supported")
