"""Indexed study -> FHIR R4 ImagingStudy (PS3.3 C.7.2-C.7.3; FHIR R4 ImagingStudy "dicom" mapping).

Counts and modalities come from the index, never from one header: ModalitiesInStudy
(0008,0061) and NumberOfStudyRelatedInstances (0020,1208) are query attributes that
instances do not carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from mapping.dicom.body_site import body_site_coding, laterality_coding
from mapping.dicom.dates import fhir_datetime
from mapping.dicom.facts import Code, InstanceFacts, SeriesFacts, StudyFacts, coding_system
from mapping.dicom.person_name import display_name
from mapping.fhir.models import ImagingStudy
from mapping.fhir.prune import prune
from mapping.order.facts import Coded

DCM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
RFC3986 = "urn:ietf:rfc:3986"
DICOM_UID = "urn:dicom:uid"


@dataclass(frozen=True)
class OrderBasis:
    """An order the study was made for (its Study Instance UID or Accession Number matched)."""

    service_request: str  # ServiceRequest id
    code: Coded | None = None  # the requested procedure's code
    description: str = ""
    referrer: str = ""  # DICOM PN: the referring physician, else the requesting one


@dataclass(frozen=True)
class SeriesView:
    facts: SeriesFacts
    instances: Sequence[InstanceFacts]


def imaging_study_from_index(
    study: StudyFacts,
    series: Sequence[SeriesView],
    *,
    resource_id: str,
    subject: str,
    endpoint: str,
    site_zone: tzinfo,
    orders: Sequence[OrderBasis] = (),
    procedure: str | None = None,
) -> ImagingStudy:
    """One ImagingStudy with every series and instance in `series` (already ordered).

    `subject` is "Patient/<id>", `endpoint` "Endpoint/<id>" (a dicom-wado-rs Endpoint). `orders`
    become `basedOn`, and give `procedureCode` and `referrer` where the DICOM header has none.
    `procedure`: the id of the Procedure (a performed procedure step) that made the study.
    """

    def when(da: str, tm: str) -> str | None:
        return fhir_datetime(da, tm, offset=study.tz_offset, site_zone=site_zone)

    body: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": resource_id,
        "identifier": study_identifiers(study),
        "status": "available",
        "modality": [_dcm(m) for m in modalities_in_study(series)],
        "subject": {"reference": subject},
        "started": when(study.study_date, study.study_time),
        "referrer": _referrer(
            study.referring_physician or next((o.referrer for o in orders if o.referrer), "")
        ),
        "basedOn": [{"reference": f"ServiceRequest/{o.service_request}"} for o in orders] or None,
        "procedureReference": {"reference": f"Procedure/{procedure}"} if procedure else None,
        "endpoint": [{"reference": endpoint}],
        "numberOfSeries": len(series),
        "numberOfInstances": sum(len(s.instances) for s in series),
        "procedureCode": [_concept(c) for c in study.procedure_codes]
        or [c for c in (_order_concept(o) for o in orders) if c]
        or None,
        "reasonCode": [{"text": study.reason}] if study.reason else None,
        "description": study.description or None,
        "series": [_series(s, when) for s in series] or None,
    }
    return ImagingStudy.model_validate(prune(body))


def study_identifiers(study: StudyFacts) -> list[dict[str, Any]]:
    """Study Instance UID as urn:oid (urn:dicom:uid), accession as an ACSN-typed identifier."""
    out: list[dict[str, Any]] = [
        {"use": "official", "system": DICOM_UID, "value": f"urn:oid:{study.study_uid}"},
    ]
    if study.accession:
        acsn: dict[str, Any] = {
            "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
            "value": study.accession,
        }
        if study.accession_system:
            acsn["system"] = study.accession_system
        if study.accession_assigner:
            acsn["assigner"] = {"display": study.accession_assigner}
        out.append(acsn)
    return out


def modalities_in_study(series: Sequence[SeriesView]) -> list[str]:
    """Distinct series modalities, in series order."""
    seen: dict[str, None] = {}
    for s in series:
        if s.facts.modality:
            seen.setdefault(s.facts.modality, None)
    return list(seen)


def _series(view: SeriesView, when: Any) -> dict[str, Any]:
    f = view.facts
    return {
        "uid": f.series_uid,
        "number": f.series_number if f.series_number is not None and f.series_number >= 0 else None,
        "modality": _dcm(f.modality or "OT"),
        "description": f.description or None,
        "numberOfInstances": len(view.instances),
        "bodySite": body_site_coding(f.body_part) if f.body_part else None,
        "laterality": laterality_coding(f.laterality) if f.laterality else None,
        "started": when(f.series_date, f.series_time),
        "performer": [{"actor": {"display": display_name(f.performing_physician)}}]
        if f.performing_physician
        else None,
        "instance": [_instance(i) for i in view.instances],
    }


def _instance(i: InstanceFacts) -> dict[str, Any]:
    return {
        "uid": i.sop_uid,
        "sopClass": {"system": RFC3986, "code": f"urn:oid:{i.sop_class_uid}"},
        "number": i.instance_number if i.instance_number is not None and i.instance_number >= 0 else None,
        "title": i.title or None,
    }


def _referrer(pn: str) -> dict[str, str] | None:
    return {"display": display_name(pn)} if pn else None


def _order_concept(order: OrderBasis) -> dict[str, Any] | None:
    code = order.code
    text = order.description or (code.display if code else "")
    if code is None or not code.code:
        return {"text": text} if text else None
    system = coding_system(code.scheme)
    coding = {"system": system, "code": code.code, "display": code.display}
    return {"coding": [{k: v for k, v in coding.items() if v}], "text": text or None}


def _dcm(code: str) -> dict[str, str]:
    return {"system": DCM, "code": code}


def _concept(code: Code) -> dict[str, Any]:
    coding = {"system": code.system, "code": code.code, "display": code.display}
    return {"coding": [{k: v for k, v in coding.items() if v}], "text": code.display}
