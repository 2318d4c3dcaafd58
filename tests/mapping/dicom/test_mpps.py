"""MPPS data sets: what N-CREATE and N-SET must carry, and what an N-SET changes
(mapping/dicom/mpps.py, PS3.4 F.7.2)."""

from __future__ import annotations

import pytest
from pydicom import Dataset

from mapping.dicom.mpps import BadPps, apply_set, check_create, performed_facts


def created(**values: object) -> Dataset:
    item = Dataset()
    item.StudyInstanceUID, item.ScheduledProcedureStepID = "1.2.3", "SPS-1"
    item.AccessionNumber, item.RequestedProcedureID = "ACC-1", "RP-1"
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [item]
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20261203", "110500"
    ds.PerformedProcedureStepEndDate = ds.PerformedProcedureStepEndTime = None
    ds.PatientID = "PAT-1"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def refusal(call: object, *args: object) -> tuple[str, str]:
    with pytest.raises(BadPps) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.kind, caught.value.keyword


def test_a_complete_n_create_passes_and_names_its_step() -> None:
    ds = created()
    check_create(ds)
    facts = performed_facts(ds)
    assert (facts.status, facts.study_uid, facts.start_time, facts.end_date) == (
        "IN PROGRESS",
        "1.2.3",
        "110500",
        "",
    )
    assert [(s.sps_id, s.accession, s.requested_procedure_id) for s in facts.steps] == [
        ("SPS-1", "ACC-1", "RP-1")
    ]


def test_n_create_refusals() -> None:
    assert refusal(check_create, created(PerformedProcedureStepStatus="COMPLETED")) == (
        "invalid",
        "PerformedProcedureStepStatus",
    )
    missing = created()
    del missing.PerformedProcedureStepStartTime
    assert refusal(check_create, missing) == ("missing", "PerformedProcedureStepStartTime")
    assert refusal(check_create, created(ScheduledStepAttributesSequence=[])) == (
        "no value",
        "ScheduledStepAttributesSequence",
    )
    assert refusal(check_create, created(PerformedProcedureStepStartDate="2026-12-03")) == (
        "invalid",
        "PerformedProcedureStepStartDate",
    )
    assert refusal(check_create, created(PerformedProcedureStepStartTime="2561")) == (
        "invalid",
        "PerformedProcedureStepStartTime",
    )
    no_study = created()
    no_study.ScheduledStepAttributesSequence[0].StudyInstanceUID = ""
    assert refusal(check_create, no_study) == ("no value", "StudyInstanceUID")


def test_n_set_changes_what_it_may_and_keeps_the_rest() -> None:
    change = Dataset()
    change.PerformedProcedureStepStatus = "COMPLETED"
    change.PerformedProcedureStepEndDate, change.PerformedProcedureStepEndTime = "20261203", "112000"
    change.PatientID = "OTHER"
    change.PerformedSeriesSequence = [Dataset(), Dataset()]
    merged = apply_set(created(), change)
    facts = performed_facts(merged)
    assert (facts.status, facts.end_time, facts.series_count) == ("COMPLETED", "112000", 2)
    assert merged.PatientID == "PAT-1"


def test_n_set_refusals() -> None:
    bad = Dataset()
    bad.PerformedProcedureStepStatus = "PAUSED"
    assert refusal(apply_set, created(), bad) == ("invalid", "PerformedProcedureStepStatus")
    early = Dataset()
    early.PerformedProcedureStepStatus = "DISCONTINUED"
    early.PerformedProcedureStepEndDate = "20261203"
    assert refusal(apply_set, created(), early) == ("no value", "PerformedProcedureStepEndTime")
    early.PerformedProcedureStepEndTime = "99"
    assert refusal(apply_set, created(), early) == ("invalid", "PerformedProcedureStepEndTime")
