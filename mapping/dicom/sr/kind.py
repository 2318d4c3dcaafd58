"""Which mapping an SR document takes, from its header alone (PS3.4 B.5 SOP classes; the root
CONTAINER's title and template, PS3.3 C.17.3).

- "pdf": Encapsulated PDF.
- "dose": an X-Ray Radiation Dose SR (or Enhanced), or any SR titled X-Ray Radiation Dose
  Report (DCM 113701) or built on TID 10001 / 10011 (some CT scanners send a Comprehensive SR).
- "measurement": a Comprehensive / Enhanced / 3D / Extensible SR titled Imaging Measurement
  Report (LOINC 126000) or built on TID 1500.
- "text": any other Basic Text, Enhanced, Comprehensive, 3D or Extensible SR.
- None: everything else (images, Key Object Selection, CAD SRs, ...): no results to map.
"""

from __future__ import annotations

from typing import Literal

from pydicom import Dataset

from mapping.dicom.sr import concepts as c
from mapping.dicom.sr.content import first_code, text_of
from mapping.dicom.sr.pdf import ENCAPSULATED_PDF

SrKind = Literal["measurement", "dose", "text", "pdf"]

DOSE_SR_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.88.76"})
TEXT_SR_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
        "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
        "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
        "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
        "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible SR
    }
)

RESULT_CLASSES = DOSE_SR_CLASSES | TEXT_SR_CLASSES | {ENCAPSULATED_PDF}
"""The SOP classes `sr_kind` may find a result document in; no other instance needs reading."""


def sr_kind(ds: Dataset) -> SrKind | None:
    """The kind of result document `ds` is, or None; reads the header only, never raises."""
    try:
        sop_class = text_of(ds, "SOPClassUID")
        if sop_class == ENCAPSULATED_PDF:
            return "pdf"
        if sop_class not in DOSE_SR_CLASSES and sop_class not in TEXT_SR_CLASSES:
            return None
        title = first_code(ds, "ConceptNameCodeSequence")
        templates = ds.get("ContentTemplateSequence") or []
        template = text_of(templates[0], "TemplateIdentifier") if len(templates) else ""
    except Exception:  # a header pydicom cannot convert
        return None
    if sop_class in DOSE_SR_CLASSES or c.is_concept(title, c.DOSE_REPORT) or template in ("10001", "10011"):
        return "dose"
    if c.is_concept(title, c.MEASUREMENT_REPORT) or template == "1500":
        return "measurement"
    return "text"
