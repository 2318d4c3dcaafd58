"""A performed procedure step -> FHIR R4 Procedure (mapping/fhir/procedure.py)."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from mapping.dicom.facts import Code
from mapping.dicom.mpps import PerformedFacts
from mapping.fhir.procedure import procedure_from_pps
from tests.fhir_schema import assert_valid_r4

ZURICH = ZoneInfo("Europe/Zurich")
FACTS = PerformedFacts(
    status="IN PROGRESS",
    steps=(),
    study_uid="1.2.3",
    start_date="20260701",
    start_time="101500",
    end_date="",
    end_time="",
    tz_offset="",
    description="CT head",
    procedure_codes=(),
    series_count=0,
    pps_id="PPS-1",
    modality="CT",
)


def body(facts: PerformedFacts = FACTS, based_on: tuple[str, ...] = ("sr-1",)) -> dict[str, object]:
    out = procedure_from_pps(
        facts, resource_id="p-1", sop_uid="1.2.9", subject="pat-1", based_on=based_on, site_zone=ZURICH
    ).model_dump(mode="json", exclude_none=True)
    assert_valid_r4(out)
    return out


def test_in_progress_in_the_site_zone_based_on_its_order() -> None:
    out = body()
    assert out["status"] == "in-progress"
    assert out["performedPeriod"] == {"start": "2026-07-01T10:15:00+02:00"}  # summer time
    assert out["basedOn"] == [{"reference": "ServiceRequest/sr-1"}]
    assert out["code"] == {"text": "CT head"}
    assert out["identifier"] == [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.9"}]


def test_status_per_outcome_and_the_stated_offset() -> None:
    done = replace(
        FACTS,
        status="COMPLETED",
        end_date="20260701",
        end_time="103000",
        tz_offset="+0000",
        procedure_codes=(Code("http://loinc.org", "24725-4", "CT Head"),),
    )
    out = body(done)
    assert out["status"] == "completed"
    assert out["performedPeriod"] == {
        "start": "2026-07-01T10:15:00Z",
        "end": "2026-07-01T10:30:00Z",
    }
    assert out["code"]["coding"] == [{"system": "http://loinc.org", "code": "24725-4", "display": "CT Head"}]
    stopped = replace(done, status="DISCONTINUED", series_count=1)
    assert body(stopped)["status"] == "stopped"
    assert body(replace(stopped, series_count=0))["status"] == "not-done"


def test_unscheduled_has_no_based_on() -> None:
    assert "basedOn" not in body(based_on=())


def test_who_where_why_and_why_not() -> None:
    full = replace(
        FACTS,
        status="DISCONTINUED",
        station_ae="CT1",
        station_name="CT room 1",
        location="Radiology B2",
        physicians=("House^Gregory",),
        operators=("Tech^Tim", "Ray^Rita"),
        reasons=(Code("http://snomed.info/sct", "25064002", "Headache"),),
        discontinued_because=(
            Code(
                "http://dicom.nema.org/resources/ontology/DCM", "110514", "Incorrect worklist entry selected"
            ),
        ),
        comments="Patient moved.",
    )
    out = body(full)
    assert [(p["function"]["text"], p["actor"]["display"]) for p in out["performer"]] == [
        ("Performing physician", "Gregory House"),
        ("Operator", "Tim Tech"),
        ("Operator", "Rita Ray"),
        ("Modality", "CT room 1 (AE CT1)"),
    ]
    assert out["performer"][-1]["actor"]["type"] == "Device"
    assert out["location"] == {"display": "Radiology B2"}
    assert out["reasonCode"][0]["coding"][0]["code"] == "25064002"
    assert out["statusReason"]["coding"][0]["code"] == "110514"
    assert out["note"] == [{"text": "Patient moved."}]
    assert "performer" not in body() and "location" not in body()
