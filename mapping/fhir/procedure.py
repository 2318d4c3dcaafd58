"""A Modality Performed Procedure Step -> FHIR R4 Procedure: what the modality did, when, for
which order.

- status (R4 event-status, as Procedure uses it): IN PROGRESS -> in-progress, COMPLETED ->
  completed; DISCONTINUED -> `stopped` ("terminated prior to the full completion ... after at
  least some of the 'main' activity was beginning to occur") when the step names performed
  series, else `not-done` ("terminated prior to any activity beyond preparatory actions"): a PPS
  is created when the acquisition starts, so a discontinued one with images was begun, and one
  without any never got past preparing.
- identifier: the PPS SOP Instance UID (urn:dicom:uid, as ImagingStudy's Study Instance UID);
- basedOn: the ServiceRequests of the scheduled steps it carried out (none: IHE's unscheduled case);
- performedPeriod: PPS Start / End Date and Time, in the site's zone unless (0008,0201) says;
- code: the Procedure Code Sequence, else the PPS Description as text;
- performer: the performing physicians and operators of its series and the station (a Device,
  by its name and AE title), each with its function as text ("Performing physician",
  "Operator", "Modality"), as display-only references: a modality names people, it does not
  identify them;
- location: Performed Location (display only); reasonCode: Reason For Performed Procedure;
  statusReason: the Discontinuation Reason; note: the PPS comments.
The study it produced is not linked from here: no R4 Procedure element references an ImagingStudy
(partOf, report and focalDevice name other types); the link is the study's
ImagingStudy.procedureReference (`mapping/fhir/imaging_study.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

from mapping.dicom.dates import fhir_datetime
from mapping.dicom.facts import Code
from mapping.dicom.mpps import PerformedFacts
from mapping.dicom.person_name import display_name
from mapping.fhir.models import Procedure
from mapping.fhir.prune import prune

DICOM_UID = "urn:dicom:uid"
_IMAGING = {"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}


def _performers(facts: PerformedFacts) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"function": {"text": "Performing physician"}, "actor": {"display": display_name(name)}}
        for name in facts.physicians
    ]
    out += [
        {"function": {"text": "Operator"}, "actor": {"display": display_name(name)}}
        for name in facts.operators
    ]
    station = " ".join(
        p for p in (facts.station_name, f"(AE {facts.station_ae})" if facts.station_ae else "") if p
    )
    if station:
        out.append({"function": {"text": "Modality"}, "actor": {"type": "Device", "display": station}})
    return out


def _concept(code: Code) -> dict[str, Any]:
    return {"coding": [{"system": code.system, "code": code.code, "display": code.display}]}


def procedure_status(facts: PerformedFacts) -> str:
    if facts.status == "COMPLETED":
        return "completed"
    if facts.status == "DISCONTINUED":
        return "stopped" if facts.series_count else "not-done"
    return "in-progress"


def procedure_from_pps(
    facts: PerformedFacts,
    *,
    resource_id: str,
    sop_uid: str,
    subject: str,
    based_on: Sequence[str],
    site_zone: tzinfo,
) -> Procedure:
    """`subject`: the Patient's id; `based_on`: ServiceRequest ids."""
    start = fhir_datetime(facts.start_date, facts.start_time, offset=facts.tz_offset, site_zone=site_zone)
    end = (
        fhir_datetime(facts.end_date, facts.end_time, offset=facts.tz_offset, site_zone=site_zone)
        if facts.end_date
        else None
    )
    codings = [{"system": c.system, "code": c.code, "display": c.display} for c in facts.procedure_codes]
    body: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": resource_id,
        "identifier": [{"system": DICOM_UID, "value": f"urn:oid:{sop_uid}"}],
        "basedOn": [{"reference": f"ServiceRequest/{sr}"} for sr in dict.fromkeys(based_on)],
        "status": procedure_status(facts),
        "category": {"coding": [_IMAGING]},
        "code": {"coding": codings, "text": facts.description or None},
        "subject": {"reference": f"Patient/{subject}"},
        "performedPeriod": {"start": start, "end": end},
        "performer": _performers(facts),
        "location": {"display": facts.location} if facts.location else None,
        "reasonCode": [_concept(c) for c in facts.reasons],
        "statusReason": _concept(facts.discontinued_because[0]) if facts.discontinued_because else None,
        "note": [{"text": facts.comments}] if facts.comments else None,
    }
    return Procedure.model_validate(prune(body))
