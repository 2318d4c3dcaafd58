"""One SR document (or Encapsulated PDF) -> one FHIR R4 DiagnosticReport.

- identifier: the document's SOP Instance UID (urn:dicom:uid); `code` the document title
  (concept name of the root, or the PDF's Document Title as text; LOINC 18748-4 Diagnostic
  imaging study when there is none); category RAD (HL7 v2 table 0074).
- status (`sr_common.report_status`): Completion Flag PARTIAL -> partial; COMPLETE and
  VERIFIED -> final; else preliminary. A PDF without flags is a finished document: final.
- `imagingStudy` the study, `basedOn` the orders, `result` the Observations mapped from the
  same document (group panels, loose measurements, the dose summary).
- `conclusion` the text of the Impressions / Conclusions sections; `presentedForm` the whole
  text report as text/plain (UTF-8, base64) or the PDF as application/pdf.
- `resultsInterpreter` the verifying observers, `performer` the person observers (DCM 121008),
  as display-only references (the facade holds no Practitioner for them).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from mapping.dicom.person_name import display_name
from mapping.dicom.sr.content import Code
from mapping.fhir.sr_coding import LOINC, codeable
from mapping.fhir.sr_common import SrContext, uid_identifier

RAD = {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}
IMAGING_STUDY_REPORT = {"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}


def report_code(title: Code | None, text: str = "") -> dict[str, Any]:
    if title:
        return codeable(title)
    return {"coding": [IMAGING_STUDY_REPORT], "text": text or None}


def diagnostic_report(
    *,
    rid: str,
    sop_instance: str,
    code: dict[str, Any],
    status: str,
    ctx: SrContext,
    effective: str | None,
    issued: str,
    results: Sequence[str],
    conclusion: str = "",
    forms: Sequence[dict[str, Any]] = (),
    interpreters: Sequence[str] = (),
    performers: Sequence[str] = (),
) -> dict[str, Any]:
    """`results`: Observation ids; `forms`: Attachments (see `text_form`, `pdf_form`)."""
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "identifier": [uid_identifier(sop_instance)],
        "basedOn": [{"reference": r} for r in ctx.based_on],
        "status": status,
        "category": [{"coding": [RAD]}],
        "code": code,
        "subject": {"reference": ctx.patient},
        "effectiveDateTime": effective,
        "issued": issued,
        "performer": [{"display": display_name(p) or p} for p in performers],
        "resultsInterpreter": [{"display": display_name(p) or p} for p in interpreters],
        "result": [{"reference": f"Observation/{r}"} for r in results],
        "imagingStudy": [ctx.study_reference],
        "conclusion": conclusion or None,
        "presentedForm": list(forms),
    }


def text_form(text: str, title: str) -> dict[str, Any] | None:
    if not text:
        return None
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return {"contentType": "text/plain; charset=utf-8", "data": data, "title": title or None}


def pdf_form(data: bytes, title: str, mime_type: str = "application/pdf") -> dict[str, Any] | None:
    if not data:
        return None
    return {"contentType": mime_type, "data": base64.b64encode(data).decode("ascii"), "title": title or None}
