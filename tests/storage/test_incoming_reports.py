"""Reports in (ORU^R01 from a RIS), on SQLite and PostgreSQL: the DiagnosticReport of the order,
or of the patient alone; preliminary -> final -> correction updates the one report; refusals
(another patient's order, a silent change of a final report, an unreadable OBR) are AE with ERR
and change nothing. Over MLLP with `mllp_send` in tests/hl7_interface."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from facade.settings import Settings
from facade.wiring import Services
from storage.fhir_store.visibility import ALL
from tests.archive import store
from tests.dicom_factory import new_uid
from tests.fhir_schema import assert_valid_r4
from tests.hl7_samples import orm, oru
from tests.storage.test_hl7_inbox import receive, service_request

STUDY = "1.2.826.0.1.3680043.10.1.1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worklist_stations": {"CT": ["CT1"]}})


def reports(services: Services, **params: str) -> list[dict[str, Any]]:
    query = services.search.parse("DiagnosticReport", list(params.items()))
    found = services.search.search(query, visibility=ALL)
    bodies = [r.to_json() for r in found.matches]
    for body in bodies:
        assert_valid_r4(body)
    return bodies


def text_of(report: dict[str, Any], content_type: str) -> bytes:
    (form,) = [f for f in report["presentedForm"] if f["contentType"].startswith(content_type)]
    return base64.b64decode(form["data"])


def test_a_report_for_an_order_follows_it_from_preliminary_to_correction(services: Services) -> None:
    assert receive(services, orm())["code"] == "AA"
    order = service_request(services, placer="PLC-1")
    assert receive(services, oru("P", msg_id="R1"))["code"] == "AA"
    (report,) = reports(services)
    assert report["status"] == "preliminary"
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{order['id']}"}]
    assert report["subject"] == order["subject"]
    assert report["imagingStudy"] == [{"reference": f"ImagingStudy/{STUDY}"}]  # the order's study
    assert report["conclusion"] == "Normal CT head."
    assert text_of(report, "text/plain").decode().splitlines() == [
        "No acute intracranial abnormality.",
        "Ventricles normal in size.",
        "Normal CT head.",
    ]
    assert report["effectiveDateTime"].startswith("2026-12-03T11:05:00")
    assert report["resultsInterpreter"][0]["display"] == "Rhea Reader"
    assert {i["type"]["coding"][0]["code"]: i["value"] for i in report["identifier"]} == {
        "PLAC": "PLC-1",
        "FILL": "FIL-1",
        "ACSN": "ACC-1",
    }
    assert receive(services, oru("F", msg_id="R2"))["code"] == "AA"
    assert receive(services, oru("F", msg_id="R3"))["code"] == "AA"  # same content again: no change
    corrected = oru("C", msg_id="R4", impression=("Small old lacunar infarct.",))
    assert receive(services, corrected)["code"] == "AA"
    (report,) = reports(services)
    assert report["status"] == "corrected" and report["conclusion"] == "Small old lacunar infarct."
    history = services.search.history("DiagnosticReport", report["id"], visibility=ALL)
    assert [v.body["status"] for v in history if v.body] == ["corrected", "final", "preliminary"]
    assert [r["id"] for r in reports(services, **{"based-on": f"ServiceRequest/{order['id']}"})] == [
        report["id"]
    ]


def test_a_silent_change_of_a_final_report_is_refused(services: Services) -> None:
    assert receive(services, oru("F", msg_id="R1"))["code"] == "AA"
    changed = receive(services, oru("F", msg_id="R2", impression=("Something else.",)))
    assert changed["code"] == "AE" and changed["where"] == "OBR^1^25" and changed["error"] == "206"
    back = receive(services, oru("P", msg_id="R3"))
    assert back["code"] == "AE"
    (report,) = reports(services)
    assert report["status"] == "final" and report["conclusion"] == "Normal CT head."


def test_a_report_without_an_order_belongs_to_the_patient_of_pid(services: Services) -> None:
    pdf = b"%PDF-1.4\n% a report\n%%EOF\n"
    message = oru(
        "F", placer="", filler="RIS-77", accession="", patient_id="NEW-9", study_uid="1.2.3.4", pdf=pdf
    )
    assert receive(services, message)["code"] == "AA"
    (report,) = reports(services)
    assert "basedOn" not in report
    assert report["imagingStudy"] == [{"reference": "ImagingStudy/1.2.3.4"}]
    assert text_of(report, "application/pdf") == pdf
    patient = services.search.read("Patient", report["subject"]["reference"].split("/")[1], visibility=ALL)
    assert patient.body is not None and patient.body["identifier"][0]["value"] == "NEW-9"
    assert reports(services, identifier="RIS-77")[0]["id"] == report["id"]


def test_an_order_of_another_patient_is_refused(services: Services) -> None:
    assert receive(services, orm())["code"] == "AA"
    answer = receive(services, oru("F", patient_id="SOMEONE-ELSE"))
    assert answer["code"] == "AE" and answer["error"] == "206" and answer["where"].startswith("PID")
    assert reports(services) == []


@pytest.mark.parametrize(
    ("change", "where", "error"),
    [
        ({"status": ""}, "OBR^1^25", "101"),
        ({"status": "Q"}, "OBR^1^25", "103"),
        ({"placer": "", "filler": "", "accession": ""}, "OBR^1^3", "101"),
        ({"study_uid": "not a uid"}, "OBX", "102"),
    ],
)
def test_unreadable_reports_are_refused_precisely(
    services: Services, change: dict[str, Any], where: str, error: str
) -> None:
    answer = receive(services, oru(**change))
    assert answer["code"] == "AE" and answer["error"] == error and answer["where"].startswith(where)
    assert reports(services) == []


@pytest.mark.parametrize("version", ["2.6", "2.7", "2.8.2"])
def test_newer_versions_are_taken_and_answered_in_kind(services: Services, version: str) -> None:
    """OMI^O23 and ORU^R01 as v2.6-2.8 senders write them: applied, ACKed in their version; a
    refusal carries its text in ERR-8 (MSA-3 is withdrawn as of v2.7)."""
    from tests.hl7_samples import omi

    ordered = receive(services, omi().replace("|P|2.5.1", f"|P|{version}"))
    assert ordered["code"] == "AA" and f"|P|{version}".encode() in ordered["raw"]
    reported = receive(
        services,
        oru("F", placer="PLC-2", filler="FIL-2", accession="ACC-2", patient_id="PAT-2").replace(
            "|P|2.5.1", f"|P|{version}"
        ),
    )
    assert reported["code"] == "AA"
    (report,) = reports(services)
    assert report["status"] == "final" and report["basedOn"][0]["reference"].startswith("ServiceRequest/")
    refused = receive(services, oru("Q", msg_id="R9").replace("|P|2.5.1", f"|P|{version}"))
    assert refused["code"] == "AE" and refused["error"] == "103"
    assert (refused["text"] == "") == (version >= "2.7")


def test_a_report_without_an_order_finds_the_patients_study_by_accession(
    services: Services, tmp_path: Path
) -> None:
    study = new_uid()
    store(
        services,
        tmp_path,
        study_uid=study,
        series_uid=new_uid(),
        patient_id="PAT-7",
        IssuerOfPatientID="HOSP",  # the RIS's issuer (PID-3.4): the same patient
        AccessionNumber="ACC-77",
    )
    store(
        services,
        tmp_path,
        study_uid=new_uid(),
        series_uid=new_uid(),
        patient_id="PAT-8",
        IssuerOfPatientID="HOSP",
        AccessionNumber="ACC-77",
    )
    answer = receive(services, oru("F", placer="", filler="RIS-7", accession="ACC-77", patient_id="PAT-7"))
    assert answer["code"] == "AA"
    (report,) = reports(services)
    assert report["imagingStudy"] == [{"reference": f"ImagingStudy/{study}"}]  # PAT-8's is another patient's
