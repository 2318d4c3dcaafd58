"""SR codes -> FHIR Coding / CodeableConcept (PS3.16 Table 8-1 coding schemes -> FHIR systems).

SCT -> http://snomed.info/sct, LN -> http://loinc.org, DCM -> the DICOM ontology, UCUM ->
http://unitsofmeasure.org, and the rest of `mapping.dicom.facts.coding_system`'s table.

Legacy SNOMED (`SRT`, and `SNM3` / `99SDM`, which PS3.16 8.1 says to read as SRT): DICOM coded
SNOMED as "SNOMED-RT style" ids (`G-C0E3`, `T-28000`) until 2019. Those are NOT SNOMED CT
concept ids, so they are never written under http://snomed.info/sct. We:
- write a numeric value that is a valid SNOMED CT concept id (Verhoeff check digit, concept
  partition) under http://snomed.info/sct: a SNOMED CT id sent with the old designator;
- translate the SRT ids we know (`SRT_TO_SCT`, the pairs DICOM's own value sets list) to their
  SNOMED CT concept, first, and keep the SRT coding as written beside it;
- keep every other SRT code under http://snomed.info/srt, the system DICOM's FHIR renderings of
  its value sets and other DICOM toolkits use for them. It is not an HL7-registered system, but
  it names exactly what the code is; SNOMED CT's own OID (urn:oid:2.16.840.1.113883.6.96) would
  claim the code is a SNOMED CT concept id, which it is not.
A private scheme (`99…`, or unknown) gets no system: code and display as written, the meaning
as the concept's text.
"""

from __future__ import annotations

from typing import Any

from mapping.dicom.facts import coding_system
from mapping.dicom.sr.content import Code

SCT = "http://snomed.info/sct"
SRT = "http://snomed.info/srt"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

_LEGACY_SNOMED = frozenset({"SRT", "SNM3", "99SDM"})

# SNOMED-RT style id -> SNOMED CT concept id (pairs from PS3.16's context groups).
SRT_TO_SCT = {
    "G-C0E3": "363698007",  # Finding Site
    "G-C171": "272741003",  # Laterality
    "G-C036": "370129005",  # Measurement Method
    "G-A1F8": "106233006",  # Topographical modifier
    "R-00317": "373098007",  # Mean
    "R-404FB": "255605001",  # Minimum
    "G-A437": "56851009",  # Maximum
    "R-10047": "386136009",  # Standard Deviation
    "R-00319": "373099004",  # Median
    "R-0032E": "373100007",  # Mode
    "R-40507": "255619001",  # Total
    "G-A100": "24028007",  # Right
    "G-A101": "7771000",  # Left
    "G-A102": "51440002",  # Right and left
    "G-D7FE": "410668003",  # Length
    "G-A166": "42798000",  # Area
    "G-D705": "118565006",  # Volume
    "T-28000": "39607008",  # Lung
    "T-62000": "10200004",  # Liver
    "T-D008A": "256674009",  # Fat
    "P5-08000": "77477000",  # Computed tomography
    "P5-40010": "71651007",  # Mammography
}


def codings(code: Code) -> list[dict[str, Any]]:
    """The FHIR codings of one DICOM code, most specific first."""
    display = code.meaning or None
    scheme = code.scheme.strip().upper()
    if scheme in _LEGACY_SNOMED:
        if is_sctid(code.value):
            return [_coding(SCT, code.value, display)]
        sct = SRT_TO_SCT.get(code.value)
        srt = _coding(SRT, code.value, display)
        return [_coding(SCT, sct, display), srt] if sct else [srt]
    return [_coding(coding_system(scheme), code.value, display)]


def codeable(code: Code) -> dict[str, Any]:
    """A CodeableConcept: the codings, and the meaning as text."""
    return {"coding": codings(code), "text": code.meaning or None}


def _coding(system: str | None, value: str, display: str | None) -> dict[str, Any]:
    return {"system": system, "code": value, "display": display}


def is_sctid(value: str) -> bool:
    """A SNOMED CT concept id: 6-18 digits, no leading zero, partition 00 or 10, Verhoeff check."""
    if not (6 <= len(value) <= 18 and value.isdigit() and value[0] != "0"):
        return False
    return value[-3:-1] in ("00", "10") and _verhoeff_ok(value)


_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def _verhoeff_ok(digits: str) -> bool:
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _D[check][_P[i % 8][int(ch)]]
    return check == 0
