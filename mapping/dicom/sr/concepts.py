"""The concept names the SR readers look for (PS3.16), each with its legacy SRT spelling.

A concept is a set of (scheme, value) pairs: SNOMED concepts were coded `SRT` (SNOMED-RT style
ids such as G-C0E3) before DICOM 2019 moved them to `SCT` concept ids; both still arrive.
"""

from __future__ import annotations

from mapping.dicom.sr.content import Code, ContentItem

Concept = frozenset[tuple[str, str]]


def concept(*pairs: tuple[str, str]) -> Concept:
    return frozenset(pairs)


def is_concept(code: Code | None, wanted: Concept) -> bool:
    return code is not None and (code.scheme.upper(), code.value) in wanted


def named(item: ContentItem, wanted: Concept) -> bool:
    return is_concept(item.name, wanted)


# Documents and templates
MEASUREMENT_REPORT = concept(("LN", "126000"), ("DCM", "126000"))  # TID 1500 title
DOSE_REPORT = concept(("DCM", "113701"))  # X-Ray Radiation Dose Report (TID 10001 / 10011)
# TID 1500 structure
IMAGING_MEASUREMENTS = concept(("DCM", "126010"))
DERIVED_MEASUREMENTS = concept(("DCM", "126011"))
MEASUREMENT_GROUP = concept(("DCM", "125007"))
TRACKING_ID = concept(("DCM", "112039"))
TRACKING_UID = concept(("DCM", "112040"))
FINDING = concept(("DCM", "121071"))
FINDING_SITE = concept(("SCT", "363698007"), ("SRT", "G-C0E3"))
LATERALITY = concept(("SCT", "272741003"), ("SRT", "G-C171"), ("DCM", "111027"))
TOPOGRAPHICAL_MODIFIER = concept(("SCT", "106233006"), ("SRT", "G-A1F8"))
MEASUREMENT_METHOD = concept(("SCT", "370129005"), ("SRT", "G-C036"))
DERIVATION = concept(("DCM", "121401"))
IMAGE_REGION = concept(("DCM", "111030"), ("DCM", "121231"))
# Observation context that is not a qualifier of a measurement
CONTEXT_ONLY = concept(
    ("DCM", "121049"),  # Language of Content Item and Descendants
    ("DCM", "121005"),  # Observer Type
    ("DCM", "121008"),  # Person Observer Name
    ("DCM", "121012"),  # Device Observer UID
)
PERSON_OBSERVER = concept(("DCM", "121008"))
# Radiation dose (TID 10001 / 10002 / 10005 / 10011 / 10012)
PROCEDURE_REPORTED = concept(("DCM", "121058"))
CT_ACCUMULATED = concept(("DCM", "113811"))
XRAY_ACCUMULATED = concept(("DCM", "113702"))
MAMMO_ACCUMULATED = concept(("DCM", "113829"))  # Accumulated Mammography X-Ray Dose
IRRADIATION_EVENTS = concept(("DCM", "113706"), ("DCM", "113819"))
ACQUISITION_PLANE = concept(("DCM", "113764"))
SINGLE_PLANE = concept(("DCM", "113622"))
START_OF_IRRADIATION = concept(("DCM", "113809"))
CT_PROCEDURE = concept(("SCT", "77477000"), ("SRT", "P5-08000"))
PROJECTION_XRAY = concept(("DCM", "113704"))
MAMMOGRAPHY = concept(("SCT", "71651007"), ("SRT", "P5-40010"))
# Text reports (TID 2000)
CONCLUSION_SECTIONS = concept(
    ("DCM", "121072"),  # Impressions
    ("DCM", "121076"),  # Conclusions
    ("DCM", "121073"),  # Impression
    ("DCM", "121077"),  # Conclusion
    ("LN", "19005-8"),  # Radiology Imaging study [Impression] (narrative)
    ("LN", "55110-1"),  # Conclusions [Interpretation] Document
)
