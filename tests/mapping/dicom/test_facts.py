"""DICOM header -> index facts (mapping/dicom/facts.py), without a database or a socket."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from mapping.dicom.facts import coding_system, header_from_dataset, local_issuer_system, same_patient

# lower-case CS values on purpose: modalities send them, and the facts upper-case them
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR CS")

RESOLVE = local_issuer_system("urn:facade:issuer", {"HOSP-A": "urn:oid:1.2.3.4"})


def header(ds: Dataset):  # type: ignore[no-untyped-def]
    return header_from_dataset(ds, default_system="urn:facade:patient-id", issuer_system=RESOLVE)


def instance(**attributes: object) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID, ds.SOPClassUID = "1.2.3.4.5", "1.2.840.10008.5.1.4.1.1.4"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.4"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_required_uids_missing_are_listed_not_raised() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4.5"
    assert header(ds).missing == ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID")
    assert header(instance()).missing == ()


def test_patient_id_system_by_issuer_precedence() -> None:
    plain = header(instance(PatientID="P1")).patient
    assert (plain.patient_id, plain.id_system) == ("P1", "urn:facade:patient-id")
    configured = header(instance(PatientID="P1", IssuerOfPatientID="HOSP-A")).patient
    assert configured.id_system == "urn:oid:1.2.3.4"
    local = header(instance(PatientID="P1", IssuerOfPatientID="Clinic B")).patient
    assert local.id_system == "urn:facade:issuer:Clinic%20B"
    qualifiers = Dataset()
    qualifiers.UniversalEntityID, qualifiers.UniversalEntityIDType = "2.16.840.1.113883.19.5", "ISO"
    universal = header(
        instance(PatientID="P1", IssuerOfPatientID="HOSP-A", IssuerOfPatientIDQualifiersSequence=[qualifiers])
    ).patient
    assert universal.id_system == "urn:oid:2.16.840.1.113883.19.5"  # the universal entity wins


def test_no_patient_id_means_no_system() -> None:
    facts = header(instance(PatientName="Doe^Jane", PatientSex="f")).patient
    assert (facts.patient_id, facts.id_system, facts.sex) == (None, None, "F")


@pytest.mark.parametrize(
    ("attributes", "fits"),
    [
        ({}, True),  # no Patient ID: belongs to whichever patient the study has
        ({"PatientID": ""}, True),
        ({"PatientID": "  "}, True),  # padding only: empty
        ({"PatientID": "P1"}, True),  # the same ID, no issuer named
        ({"PatientID": "P1", "IssuerOfPatientID": "HOSP-A"}, True),  # the study's issuer
        ({"PatientID": "P1", "IssuerOfPatientID": "HOSP-B"}, False),  # another issuer
        ({"PatientID": "P2"}, False),
        ({"PatientID": "P2", "IssuerOfPatientID": "HOSP-A"}, False),
    ],
)
def test_an_instance_fits_a_stored_patient_unless_it_names_another(
    attributes: dict[str, object], fits: bool
) -> None:
    facts = header(instance(**attributes)).patient
    assert same_patient(facts, "P1", "urn:oid:1.2.3.4") is fits
    assert facts.issuer_stated is ("IssuerOfPatientID" in attributes)


def test_a_study_stored_without_patient_id_fits_only_instances_without_one() -> None:
    assert same_patient(header(instance(PatientID="")).patient, None, None)
    assert not same_patient(header(instance(PatientID="P1")).patient, None, None)


def test_study_series_and_instance_facts() -> None:
    ds = instance(
        StudyDate="20240131",
        StudyTime="101500",
        TimezoneOffsetFromUTC="+0100",
        AccessionNumber="ACC-1",
        Modality="MR",
        SeriesNumber=3,
        BodyPartExamined="knee",
        Laterality="l",
        InstanceNumber=7,
        Rows=64,
        Columns=32,
        SpecificCharacterSet=["", "ISO 2022 IR 87"],
    )
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    facts = header(ds)
    assert (facts.study.study_date, facts.study.tz_offset, facts.study.accession) == (
        "20240131",
        "+0100",
        "ACC-1",
    )
    assert (facts.series.modality, facts.series.series_number) == ("MR", 3)
    assert (facts.series.body_part, facts.series.laterality) == ("KNEE", "L")  # upper-cased
    assert (facts.instance.instance_number, facts.instance.rows, facts.instance.columns) == (7, 64, 32)
    assert facts.instance.transfer_syntax_uid == ExplicitVRLittleEndian
    assert facts.instance.character_set == "\\ISO 2022 IR 87"


def test_procedure_codes_get_uri_systems() -> None:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "24727-0", "LN", "CT Head"
    facts = header(instance(ProcedureCodeSequence=[code]))
    (procedure,) = facts.study.procedure_codes
    assert (procedure.system, procedure.code, procedure.display) == ("http://loinc.org", "24727-0", "CT Head")
    assert coding_system("SCT") == "http://snomed.info/sct"
