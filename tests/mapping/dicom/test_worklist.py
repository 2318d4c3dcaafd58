"""Modality Worklist item, matching and response (PS3.4 K.6, C.2.2.2), pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydicom import Dataset

from mapping.dicom.worklist import BadIdentifier, WorklistPatient, worklist_item, worklist_query
from tests.orders import procedure

PATIENT = WorklistPatient(name="Testperson^Alice^^", patient_id="PID-1", birth_date="19800101", sex="F")


def item(status: str = "SCHEDULED", patient: WorklistPatient = PATIENT, **changes: Any) -> Dataset:
    order = procedure("ACC-1", **changes)
    return worklist_item(patient, order, order.steps[0], status)


def request(sps: dict[str, Any] | None = None, **keys: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    if sps is not None:
        step = Dataset()
        for keyword, value in sps.items():
            setattr(step, keyword, value)
        ds.ScheduledProcedureStepSequence = [step]
    return ds


def found(query: Dataset, candidate: Dataset) -> bool:
    return worklist_query(query).matches(candidate)


def test_the_item_holds_what_the_facts_hold() -> None:
    ds = item(station_aets=("CT1", "CT2"))
    assert str(ds.PatientName) == "Testperson^Alice"
    assert (ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == ("PID-1", "19800101", "F")
    assert "IssuerOfPatientID" not in ds  # not held yet
    assert (ds.AccessionNumber, ds.RequestedProcedureID) == ("ACC-1", "RP-ACC-1")
    issuer = ds.IssuerOfAccessionNumberSequence[0]
    assert (issuer.LocalNamespaceEntityID, issuer.UniversalEntityID, issuer.UniversalEntityIDType) == (
        "RIS",
        "1.2.3.4.5",
        "ISO",
    )
    assert ds.RequestedProcedureCodeSequence[0].CodeValue == "CTHEAD"
    assert ds.ReasonForRequestedProcedureCodeSequence[0].CodingSchemeDesignator == "I10"
    assert (ds.PlacerOrderNumberImagingServiceRequest, ds.FillerOrderNumberImagingServiceRequest) == (
        "PL-ACC-1",
        "FI-ACC-1",
    )
    assert (str(ds.RequestingPhysician), str(ds.ReferringPhysicianName)) == ("Order^Olga", "Refer^Rita")
    assert (ds.PregnancyStatus, ds.RequestedProcedurePriority, ds.AdmissionID) == (4, "ROUTINE", "ADM-1")
    assert (ds.PatientTransportArrangements, ds.RequestedProcedureComments) == ("WALK", "Patient anxious")
    assert (ds.MedicalAlerts, ds.PatientState, ds.ReasonForTheRequestedProcedure) == (
        "None known",
        "Ambulatory",
        "Headache",
    )
    assert len(ds.ScheduledProcedureStepSequence) == 1
    sps = ds.ScheduledProcedureStepSequence[0]
    assert list(sps.ScheduledStationAETitle) == ["CT1", "CT2"]
    assert (sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime) == (
        "20261203",
        "093000",
    )
    assert (sps.Modality, sps.ScheduledProcedureStepID, sps.ScheduledProcedureStepStatus) == (
        "CT",
        "SPS-ACC-1",
        "SCHEDULED",
    )
    assert sps.ScheduledProtocolCodeSequence[0].CodeMeaning == "Head protocol"
    assert (sps.ScheduledStationName, sps.ScheduledProcedureStepLocation) == ("CT-ROOM-1", "Radiology 1")
    assert str(sps.ScheduledPerformingPhysicianName) == "Tech^Tina"


def test_facts_not_held_are_left_out() -> None:
    ds = item(
        pregnancy_status=None,
        admission_id="",
        accession=replace(procedure().accession, namespace="", universal_id=""),
    )
    assert "PregnancyStatus" not in ds and "AdmissionID" not in ds
    assert "IssuerOfAccessionNumberSequence" not in ds


def test_one_title_finds_a_step_scheduled_for_several() -> None:
    candidate = item(station_aets=("CT1", "CT2"))
    assert found(request({"ScheduledStationAETitle": "CT2"}), candidate)
    assert found(request({"ScheduledStationAETitle": "CT1"}), candidate)
    assert not found(request({"ScheduledStationAETitle": "CT3"}), candidate)
    assert found(request({"ScheduledStationAETitle": ["CT3", "CT2"]}), candidate)


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [
        ("20261202", "200000", True),
        ("20261203", "050000", True),
        ("20261203", "070000", False),  # after the end
        ("20261202", "170000", False),  # before the start
        ("", "", False),
    ],
)
def test_start_date_and_time_are_one_range(date: str, time: str, expected: bool) -> None:
    """Yesterday 18:00 to today 06:00: matched each alone, 20:00 would fail '1800-0600'."""
    query = request(
        {
            "ScheduledProcedureStepStartDate": "20261202-20261203",
            "ScheduledProcedureStepStartTime": "1800-0600",
        }
    )
    assert found(query, item(start_date=date, start_time=time)) is expected


def test_a_day_and_a_time_range() -> None:
    query = request(
        {"ScheduledProcedureStepStartDate": "20261203", "ScheduledProcedureStepStartTime": "0900-1000"}
    )
    assert found(query, item(start_time="093000"))
    assert not found(query, item(start_time="103000"))
    assert not found(query, item(start_date="20261204"))


def test_open_ended_ranges() -> None:
    assert found(request({"ScheduledProcedureStepStartDate": "20261203-"}), item())
    assert not found(request({"ScheduledProcedureStepStartDate": "-20261202"}), item())


def test_names_ignore_case_and_take_wildcards() -> None:
    assert found(request(PatientName="testperson^alice"), item())
    assert found(request(PatientName="TEST*"), item())
    assert not found(request(PatientName="Probe*"), item())


def test_accession_and_requested_procedure_id_are_matched() -> None:
    assert found(request(AccessionNumber="ACC-1", RequestedProcedureID="RP-ACC-1"), item())
    assert not found(request(AccessionNumber="ACC-9"), item())
    assert not found(request(RequestedProcedureID="RP-9"), item())


def test_a_stored_empty_value_fails_a_key_with_a_value() -> None:
    assert not found(request(AdmissionID="ADM-1"), item(admission_id=""))
    assert found(request(AdmissionID=""), item(admission_id=""))


def test_a_list_of_uids() -> None:
    candidate = item(study_uid="1.2.3")
    assert found(request(StudyInstanceUID=["1.2.9", "1.2.3"]), candidate)
    assert not found(request(StudyInstanceUID="1.2.9"), candidate)


def test_a_sequence_matches_when_its_item_does() -> None:
    code = Dataset()
    code.CodeValue = "CTHEAD"
    assert found(request(RequestedProcedureCodeSequence=[code]), item())
    code.CodeValue = "MRHEAD"
    assert not found(request(RequestedProcedureCodeSequence=[code]), item())
    assert found(request(RequestedProcedureCodeSequence=[Dataset()]), item())


def test_final_steps_are_hidden_unless_asked_for() -> None:
    for status in ("COMPLETED", "DISCONTINUED", "CANCELED"):
        assert not found(request(PatientID="PID-1"), item(status))
        assert found(request({"ScheduledProcedureStepStatus": status}), item(status))
    assert found(request(PatientID="PID-1"), item("STARTED"))
    assert not found(request({"ScheduledProcedureStepStatus": "SCHEDULED"}), item("STARTED"))


def test_the_response_holds_the_keys_asked_only() -> None:
    query = worklist_query(
        request(
            {"Modality": "", "ScheduledProtocolCodeSequence": [_code_key()]},
            PatientName="",
            AdmissionID="",
            PatientWeight="",
        )
    )
    out = query.response(item(admission_id=""))
    assert [e.keyword for e in out] == [
        "PatientName",
        "PatientWeight",
        "AdmissionID",
        "ScheduledProcedureStepSequence",
    ]
    assert out.AdmissionID in (None, "") and out.PatientWeight in (None, "")
    (sps,) = out.ScheduledProcedureStepSequence
    assert [e.keyword for e in sps] == ["Modality", "ScheduledProtocolCodeSequence"]
    assert [e.keyword for e in sps.ScheduledProtocolCodeSequence[0]] == ["CodeValue"]


def _code_key() -> Dataset:
    code = Dataset()
    code.CodeValue = ""
    return code


def test_an_empty_sequence_key_returns_the_whole_item() -> None:
    out = worklist_query(request(ScheduledProcedureStepSequence=[])).response(item())
    sps = out.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepID == "SPS-ACC-1" and sps.ScheduledStationName == "CT-ROOM-1"
    assert list(out.keys()) == [0x00400100]


def test_non_ascii_values_are_answered_in_utf8() -> None:
    patient = replace(PATIENT, name="Müller^Jörg")
    out = worklist_query(request(PatientName="müller*")).response(item(patient=patient))
    assert out.SpecificCharacterSet == "ISO_IR 192"
    assert str(out.PatientName) == "Müller^Jörg"
    ascii_only = worklist_query(request(PatientName="")).response(item())
    assert "SpecificCharacterSet" not in ascii_only


@pytest.mark.parametrize(
    "bad",
    [
        request(StudyInstanceUID="1.2.*"),
        request({"ScheduledProcedureStepStartDate": "2026-12-03"}),
        request({"ScheduledProcedureStepStartTime": "25"}),
    ],
)
def test_values_their_vr_cannot_take_are_refused(bad: Dataset) -> None:
    with pytest.raises(BadIdentifier):
        worklist_query(bad)
