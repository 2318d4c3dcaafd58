"""A radiation dose SR's totals -> one FHIR R4 Observation per the HL7 "Radiation Dose Summary
for Diagnostic Procedures on FHIR" guide (RadiationDoseSummary, LOINC 73569-6).

- identifier: the RDSR's SOP Instance UID; partOf and focus: the ImagingStudy; basedOn: the
  orders; effectiveDateTime: Start of X-Ray Irradiation (113809), else the report's Observation
  DateTime, else its content date and time, else `issued` (the guide wants one).
- value: a string summary of the totals, as the guide has it.
- component: Procedure reported (DCM 121058), then one per accumulated total, DCM-coded
  (113813 CT DLP total, 113722 / 113726 / 113727 DAP totals, 113725 Dose (RP) total, 113730
  total fluoro time, 113731 total number of radiographic frames, 111637 accumulated average
  glandular dose, ...), `valueQuantity` in the template's UCUM unit (converted exactly when the
  SR used another one), or the unit as text when it could not be read. A biplane system's
  totals, and a mammography total per breast, are one component each; `note` says which is
  which and what unit normalisation did.
"""

from __future__ import annotations

from typing import Any

from mapping.dicom.sr.content import Document
from mapping.dicom.sr.dose import DoseReport, DoseTotal
from mapping.fhir.observation import DATA_ABSENT, Shared
from mapping.fhir.sr_coding import DCM, LOINC, UCUM, codeable
from mapping.fhir.sr_common import uid_identifier

DOSE_SUMMARY = {
    "system": LOINC,
    "code": "73569-6",
    "display": "Radiation exposure and protection information",
}
PROCEDURE_REPORTED = {"system": DCM, "code": "121058", "display": "Procedure reported"}


def dose_observation(shared: Shared, report: DoseReport, rid: str) -> dict[str, Any]:
    doc: Document = shared.doc
    body = shared.base(rid, {"coding": [DOSE_SUMMARY], "text": "Radiation Dose Summary"}, report.start)
    body["effectiveDateTime"] = body["effectiveDateTime"] or shared.issued
    body["identifier"] = [uid_identifier(doc.sop_instance)]
    body["focus"] = [shared.ctx.study_reference]
    body.pop("derivedFrom")  # the guide links the study through partOf and focus
    components: list[dict[str, Any]] = []
    if report.procedure:
        components.append(
            {"code": {"coding": [PROCEDURE_REPORTED]}, "valueCodeableConcept": codeable(report.procedure)}
        )
    components += [_component(t) for t in report.totals]
    body["component"] = components
    body["valueString"] = summary(report)
    body["note"] = [{"text": n} for n in (_note(t) for t in report.totals) if n]
    return body


def summary(report: DoseReport) -> str:
    """'CT Dose Length Product Total: 1234.50 mGy.cm; ...' (values as converted, exact)."""
    parts = []
    for t in report.totals:
        value = str(t.value) if t.value is not None else "not given"
        unit = "" if t.unit == "1" else t.unit or t.unit_text
        parts.append(f"{t.meaning}{_qualified(t)}: {value} {unit}".rstrip())
    return "; ".join(parts) or "no accumulated dose totals"


def _component(t: DoseTotal) -> dict[str, Any]:
    out: dict[str, Any] = {"code": {"coding": [{"system": DCM, "code": t.code, "display": t.meaning}]}}
    if t.value is None:
        out["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT, "code": "error" if t.text else "unknown"}]
        }
        return out
    quantity: dict[str, Any] = {"value": t.value, "unit": t.unit or t.unit_text or None}
    if t.unit:
        quantity["system"], quantity["code"] = UCUM, t.unit
    out["valueQuantity"] = quantity
    return out


def _qualified(t: DoseTotal) -> str:
    said = [x.meaning or x.value for x in (t.plane, t.laterality) if x]
    return f" ({', '.join(said)})" if said else ""


def _note(t: DoseTotal) -> str:
    if not t.note and not t.plane and not t.laterality:
        return ""
    return f"{t.meaning}{_qualified(t)}: {t.note or 'as written'}"
