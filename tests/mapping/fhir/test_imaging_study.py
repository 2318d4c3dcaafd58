"""Index facts -> FHIR R4 ImagingStudy and Patient (mapping/fhir/imaging_study.py, patient.py)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from mapping.dicom.facts import Code, InstanceFacts, PatientFacts, SeriesFacts, StudyFacts
from mapping.fhir.imaging_study import SeriesView, imaging_study_from_index, modalities_in_study
from mapping.fhir.patient import patient_from_index

BERLIN = ZoneInfo("Europe/Berlin")


def study(**overrides: object) -> StudyFacts:
    values: dict[str, object] = {
        "study_uid": "1.2.3",
        "study_date": "20240131",
        "study_time": "101500",
        "tz_offset": "",
        "accession": "",
        "accession_system": None,
        "accession_assigner": None,
        "study_id": "",
        "description": "",
        "referring_physician": "",
        "procedure_codes": (),
        "reason": "",
    }
    return StudyFacts(**{**values, **overrides})  # type: ignore[arg-type]


def series(uid: str, modality: str, *sops: str, number: int | None = 1, **overrides: object) -> SeriesView:
    values: dict[str, object] = {
        "series_uid": uid,
        "modality": modality,
        "series_number": number,
        "description": "",
        "body_part": "",
        "laterality": "",
        "series_date": "",
        "series_time": "",
        "performing_physician": "",
    }
    instances = [
        InstanceFacts(
            sop_uid=sop,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
            instance_number=n,
            title="",
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            character_set="",
            rows=None,
            columns=None,
            number_of_frames=None,
        )
        for n, sop in enumerate(sops, 1)
    ]
    return SeriesView(SeriesFacts(**{**values, **overrides}), instances)  # type: ignore[arg-type]


def imaging_study(facts: StudyFacts, views: list[SeriesView]):  # type: ignore[no-untyped-def]
    return imaging_study_from_index(
        facts, views, resource_id="1.2.3", subject="Patient/p1", endpoint="Endpoint/e1", site_zone=BERLIN
    )


def test_counts_and_modalities_come_from_the_index() -> None:
    views = [series("1.2.3.1", "MR", "1.1", "1.2"), series("1.2.3.2", "SR", "2.1"), series("1.2.3.3", "MR")]
    resource = imaging_study(study(), views)
    assert (resource.numberOfSeries, resource.numberOfInstances) == (3, 3)
    assert [c.code for c in resource.modality] == ["MR", "SR"]  # distinct, in series order
    assert modalities_in_study(views) == ["MR", "SR"]
    assert [s.numberOfInstances for s in resource.series] == [2, 1, 0]


def test_identifiers_study_uid_and_accession() -> None:
    facts = study(accession="ACC-9", accession_system="urn:oid:1.2.9", accession_assigner="RIS")
    resource = imaging_study(facts, [series("1.2.3.1", "CT", "1.1")])
    uid, accession = resource.identifier
    assert (uid.system, uid.value) == ("urn:dicom:uid", "urn:oid:1.2.3")
    assert accession.type.coding[0].code == "ACSN"
    assert (accession.system, accession.value, accession.assigner.display) == (
        "urn:oid:1.2.9",
        "ACC-9",
        "RIS",
    )


def test_started_uses_the_offset_else_the_site_zone() -> None:
    with_offset = imaging_study(study(tz_offset="-0500"), [])
    assert with_offset.started.isoformat() == "2024-01-31T10:15:00-05:00"
    in_site_zone = imaging_study(study(), [])
    assert in_site_zone.started.isoformat() == "2024-01-31T10:15:00+01:00"  # Berlin in winter
    assert imaging_study(study(study_date=""), []).started is None  # never a guess


def test_series_details_and_absent_elements_stay_absent() -> None:
    view = series("1.2.3.1", "MR", "1.1", number=-1, body_part="KNEE", laterality="L", description="Sag T1")
    resource = imaging_study(study(reason="Pain", description="Knee"), [view])
    (s,) = resource.series
    assert s.number is None  # negative series numbers are not positiveInt
    assert s.bodySite.system == "http://snomed.info/sct"
    assert s.laterality.code
    assert (s.description, resource.description, resource.reasonCode[0].text) == ("Sag T1", "Knee", "Pain")
    assert resource.referrer is None and resource.procedureCode is None
    assert s.instance[0].sopClass.code == "urn:oid:1.2.840.10008.5.1.4.1.1.4"


def test_procedure_code_keeps_system_code_and_display() -> None:
    code = Code(system="http://loinc.org", code="24727-0", display="CT Head")
    (concept,) = imaging_study(study(procedure_codes=(code,)), []).procedureCode
    assert (concept.coding[0].system, concept.coding[0].code, concept.text) == (
        "http://loinc.org",
        "24727-0",
        "CT Head",
    )


def test_patient_identifier_name_gender_birth_date() -> None:
    facts = PatientFacts(
        patient_id="P1", id_system="urn:oid:1.2.3.4", name="Doe^Jane", birth_date="19800229", sex="F"
    )
    patient = patient_from_index(facts, resource_id="p1")
    (identifier,) = patient.identifier
    assert (identifier.system, identifier.value, identifier.type.coding[0].code) == (
        "urn:oid:1.2.3.4",
        "P1",
        "MR",
    )
    assert (patient.name[0].family, patient.name[0].given) == ("Doe", ["Jane"])
    assert (patient.gender, patient.birthDate.isoformat()) == ("female", "1980-02-29")


def test_patient_without_id_sex_or_valid_birth_date_leaves_them_absent() -> None:
    facts = PatientFacts(patient_id=None, id_system=None, name="", birth_date="1980", sex="X")
    patient = patient_from_index(facts, resource_id="p2")
    assert patient.identifier is None and patient.name is None
    assert patient.gender is None and patient.birthDate is None
