"""A requested procedure -> FHIR R4 ServiceRequest (the HL7 Imaging ServiceRequest IG, adapted to
R4: one ServiceRequest per requested procedure, identified by its placer and filler order
numbers and its accession number, v2-0203 types PLC / FILL / ACSN, and by its Study Instance UID
as a urn:dicom:uid identifier)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from mapping.dicom.dates import fhir_datetime
from mapping.dicom.facts import coding_system
from mapping.dicom.person_name import display_name
from mapping.fhir.prune import prune
from mapping.order.facts import Coded, EntityId, Person, RequestedProcedure, RequestStatus

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DICOM_UID = "urn:dicom:uid"
# HL7 table 0396 coding systems beyond DICOM's designators (`coding_system`)
_HL7_SYSTEMS = {
    "LN": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "C4": "http://www.ama-assn.org/go/cpt",
    "RADLEX": "http://radlex.org",
    "RPID": "http://www.radlex.org",
}
_PRIORITY = {"STAT": "stat", "HIGH": "urgent", "MEDIUM": "routine", "ROUTINE": "routine", "LOW": "routine"}


def service_request_from_order(
    procedure: RequestedProcedure,
    *,
    resource_id: str,
    status: RequestStatus,
    subject: str,
    site_zone: tzinfo,
    id_system: str | None = None,
) -> dict[str, Any]:
    """The ServiceRequest as JSON. `subject`: the Patient's id. `id_system`: the URI of order
    numbers whose assigner names no URI (else the identifier has no system, and its assigner's
    name as `assigner.display`).

    Not put through fhir.resources here: validating took ~4 ms per order, on the path every
    order's ACK waits for; tests check what this builds against the R4 schema and model."""
    identifiers = order_identifiers(procedure.placer, procedure.filler, procedure.accession, id_system)
    if procedure.study_uid:
        identifiers.append({"system": DICOM_UID, "value": f"urn:oid:{procedure.study_uid}"})
    step = procedure.steps[0] if procedure.steps else None
    occurrence = (
        fhir_datetime(step.start_date, step.start_time, offset="", site_zone=site_zone) if step else None
    )
    authored = hl7_datetime(procedure.ordered_at, site_zone)
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": resource_id,
        "identifier": identifiers,
        "status": status,
        "intent": "order",
        "category": [
            {"coding": [{"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}]}
        ],
        "priority": _PRIORITY.get(procedure.priority),
        "code": concept(procedure.code, procedure.description),
        "subject": {"reference": f"Patient/{subject}"},
        "occurrenceDateTime": occurrence,
        "authoredOn": authored,
        "requester": _person(procedure.requesting_physician),
        "reasonCode": [concept(c, "") for c in procedure.reason_codes]
        or ([{"text": procedure.reason}] if procedure.reason else None),
        "note": [{"text": procedure.comments}] if procedure.comments else None,
    }
    out: dict[str, Any] = prune(body)
    return out


def order_identifiers(
    placer: EntityId, filler: EntityId, accession: EntityId, id_system: str | None
) -> list[dict[str, Any]]:
    """The order's numbers as identifiers typed PLAC / FILL / ACSN (v2-0203)."""
    found = (
        _identifier(placer, "PLAC", id_system),
        _identifier(filler, "FILL", id_system),
        _identifier(accession, "ACSN", id_system),
    )
    return [i for i in found if i]


def hl7_datetime(digits: str, site_zone: tzinfo) -> str | None:
    """An HL7 DTM (YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ]) as a FHIR dateTime, None when empty."""
    if not digits:
        return None
    return fhir_datetime(digits[:8], _time(digits), offset=_offset(digits), site_zone=site_zone)


def _identifier(entity: EntityId, kind: str, fallback: str | None) -> dict[str, Any] | None:
    if not entity.value:
        return None
    system = _assigner_uri(entity) or fallback
    out: dict[str, Any] = {"type": {"coding": [{"system": V2_0203, "code": kind}]}, "value": entity.value}
    if system:
        out["system"] = system
    if entity.namespace and not entity.universal_id:
        out["assigner"] = {"display": entity.namespace}
    return out


def _assigner_uri(entity: EntityId) -> str | None:
    kind = entity.universal_id_type.upper()
    if entity.universal_id and kind == "ISO":
        return f"urn:oid:{entity.universal_id}"
    if entity.universal_id and kind in ("URI", "URL"):
        return entity.universal_id
    return None


def concept(code: Coded | None, text: str) -> dict[str, Any] | None:
    """A CodeableConcept of an HL7 or DICOM coded value and its text."""
    if code is None:
        return {"text": text} if text else None
    system = _HL7_SYSTEMS.get(code.scheme.upper()) or coding_system(code.scheme)
    coding = {"system": system, "code": code.code, "display": code.display or None}
    return {"coding": [coding] if code.code else None, "text": text or code.display or None}


def _person(person: Person) -> dict[str, Any] | None:
    if not person.name and not person.id:
        return None
    return {
        "identifier": {"value": person.id} if person.id else None,
        "display": display_name(person.name) if person.name else None,
    }


def _time(dt: str) -> str:
    rest = dt[8:]
    for sign in "+-":
        rest = rest.split(sign)[0]
    return rest


def _offset(dt: str) -> str:
    for sign in "+-":
        if sign in dt[8:]:
            return sign + dt[8:].split(sign)[1][:4]
    return ""
