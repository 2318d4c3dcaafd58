"""A report that came in as ORU^R01 (`mapping.hl7.results`) -> FHIR R4 DiagnosticReport.

- identifier: the order's placer / filler / accession numbers (PLAC / FILL / ACSN, as on its
  ServiceRequest), so that a later ORU and a FHIR search by any of them find the same report;
- category RAD (v2-0074), code from OBR-4 (else "Imaging report"), subject the patient of PID-3,
  basedOn the order's ServiceRequest when we hold the order, imagingStudy the study of an OBX
  113014 or of the order;
- effectiveDateTime from OBR-7, issued from OBR-22, resultsInterpreter from OBR-32 (its name as
  a display; the id as an identifier);
- conclusion: the impression lines when the report marks them, else the whole text;
  presentedForm: the whole text (text/plain, UTF-8) and each PDF (application/pdf).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from mapping.dicom.person_name import display_name
from mapping.fhir.diagnostic_report import RAD, pdf_form, text_form
from mapping.fhir.prune import prune
from mapping.fhir.service_request import concept, hl7_datetime, order_identifiers
from mapping.hl7.results import ReportFacts

_LOINC = "http://loinc.org"


def report_from_hl7(
    report: ReportFacts,
    *,
    resource_id: str,
    subject: str,
    based_on: str | None,
    imaging_study: str | None,
    site_zone: tzinfo,
    id_system: str | None = None,
) -> dict[str, Any]:
    """The DiagnosticReport as JSON. `subject`: the Patient's id; `based_on`: the ServiceRequest's
    id; `imaging_study`: the ImagingStudy's id (its Study Instance UID)."""
    text = "\n".join(report.text)
    made = [text_form(text, "Report"), *(pdf_form(pdf, "Report (PDF)") for pdf in report.pdfs)]
    forms = [form for form in made if form is not None]
    interpreter = None
    if report.interpreter or report.interpreter_id:
        interpreter = {
            "identifier": {"value": report.interpreter_id} if report.interpreter_id else None,
            "display": display_name(report.interpreter) if report.interpreter else None,
        }
    body: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": resource_id,
        "identifier": order_identifiers(report.placer, report.filler, report.accession, id_system),
        "basedOn": [{"reference": f"ServiceRequest/{based_on}"}] if based_on else None,
        "status": report.status,
        "category": [{"coding": [RAD]}],
        "code": concept(report.code, "")
        or {"coding": [{"system": _LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}]},
        "subject": {"reference": f"Patient/{subject}"},
        "effectiveDateTime": hl7_datetime(report.observed_at, site_zone),
        "issued": _instant(hl7_datetime(report.reported_at, site_zone)),
        "resultsInterpreter": [interpreter] if interpreter else None,
        "imagingStudy": [{"reference": f"ImagingStudy/{imaging_study}"}] if imaging_study else None,
        "conclusion": "\n".join(report.impression) or text or None,
        "presentedForm": forms or None,
    }
    out: dict[str, Any] = prune(body)
    return out


def _instant(value: str | None) -> str | None:
    """`issued` is an instant: a dateTime with seconds and a zone, else left out."""
    if value is None or len(value) < 20 or "T" not in value:
        return None
    return value
