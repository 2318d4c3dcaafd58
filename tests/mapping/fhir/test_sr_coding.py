"""DICOM coding schemes -> FHIR systems, legacy SNOMED handled deliberately (sr_coding.py)."""

from __future__ import annotations

from mapping.dicom.sr.content import Code
from mapping.fhir.sr_coding import SCT, SRT, SRT_TO_SCT, codeable, codings, is_sctid


def test_standard_schemes() -> None:
    assert codings(Code("LN", "126000", "Imaging Measurement Report")) == [
        {"system": "http://loinc.org", "code": "126000", "display": "Imaging Measurement Report"}
    ]
    assert (
        codings(Code("DCM", "121071", "Finding"))[0]["system"]
        == "http://dicom.nema.org/resources/ontology/DCM"
    )
    assert codings(Code("UCUM", "mm", "mm"))[0]["system"] == "http://unitsofmeasure.org"
    assert codings(Code("SCT", "39607008", "Lung"))[0]["system"] == SCT


def test_legacy_snomed_is_never_passed_off_as_a_concept_id() -> None:
    assert codings(Code("SRT", "T-28000", "Lung")) == [
        {"system": SCT, "code": "39607008", "display": "Lung"},
        {"system": SRT, "code": "T-28000", "display": "Lung"},
    ]
    assert codings(Code("SRT", "T-D0050", "Tissue")) == [
        {"system": SRT, "code": "T-D0050", "display": "Tissue"}
    ]
    # a SNOMED CT id sent with the old designator is one
    assert codings(Code("SRT", "39607008", "Lung")) == [
        {"system": SCT, "code": "39607008", "display": "Lung"}
    ]
    assert codings(Code("SNM3", "G-C0E3", "Finding Site"))[0]["code"] == "363698007"


def test_every_translation_targets_a_valid_sctid() -> None:
    assert all(is_sctid(v) for v in SRT_TO_SCT.values())
    assert not is_sctid("39607009")  # check digit wrong
    assert not is_sctid("0396070")
    assert not is_sctid("G-C0E3")


def test_private_schemes_have_no_system_and_keep_their_text() -> None:
    assert codeable(Code("99_OFFIS_DCMTK", "1234", "Diameter")) == {
        "coding": [{"system": None, "code": "1234", "display": "Diameter"}],
        "text": "Diameter",
    }
