"""TID 1500 measurement groups -> FHIR R4 Observations (the HL7 "DICOM SR to FHIR" guide's
ImagingMeasurementGroup / ImagingMeasurement / ImagingQualitativeEvaluation, adapted to R4).

- One Observation per NUM (`measurement_observation`): `code` the concept name, `valueQuantity`
  the value exactly as written (a `Decimal`: '12.50' stays 12.50) with its UCUM unit (respelled
  deliberately by `units.py`, noted in `note`), or `dataAbsentReason` from the Numeric Value
  Qualifier; `bodySite` the Finding Site (the group's when the NUM has none), its laterality and
  topographical modifier as `component`s (R4 has no BodyStructure-in-bodySite); `method` the
  Derivation (mean / minimum / maximum / SD: separate Observations, never merged), else the
  Measurement Method (a `component` when both are there); every other qualifier (HAS PROPERTIES,
  INFERRED FROM numbers, concept modifiers) a `component`, never an Observation of its own.
- One panel Observation per Measurement Group (`group_observation`): code DCM 125007, value the
  Finding, `hasMember` its measurements and qualitative evaluations, tracking identifier and
  UID as `identifier`s (also on each member).
- All: category imaging, `subject`, `basedOn` the orders, `partOf` and `derivedFrom` the
  ImagingStudy, image references and regions as `sr_common.IMAGE_SELECTION` extensions,
  `effectiveDateTime` the Observation DateTime (else the content date and time), `issued`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mapping.dicom.sr.content import Code, Document, Measured
from mapping.dicom.sr.tid1500 import Evaluation, Measurement, MeasurementGroup, Qualifier, Site
from mapping.dicom.sr.units import unit_from_code
from mapping.fhir.sr_coding import DCM, SCT, UCUM, codeable
from mapping.fhir.sr_common import (
    IMAGING_CATEGORY,
    SrContext,
    image_selections,
    issued,
    observation_status,
    resource_id,
    uid_identifier,
    when,
)

DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
GROUP_CODE = {"system": DCM, "code": "125007", "display": "Measurement Group"}
TRACKING_UID = {"system": DCM, "code": "112040", "display": "Tracking Unique Identifier"}
TRACKING_ID = {"system": DCM, "code": "112039", "display": "Tracking Identifier"}
LATERALITY = {"system": SCT, "code": "272741003", "display": "Laterality"}
TOPOGRAPHICAL = {"system": SCT, "code": "106233006", "display": "Topographical modifier"}
FINDING_SITE = {"system": SCT, "code": "363698007", "display": "Finding Site"}
METHOD = {"system": SCT, "code": "370129005", "display": "Measurement Method"}
# Numeric Value Qualifier (CID 42) -> data-absent-reason
_ABSENT = {
    "114000": "not-a-number",
    "114001": "negative-infinity",
    "114002": "positive-infinity",
    "114007": "not-performed",
    "114010": "unknown",
    "114011": "unknown",
}


@dataclass(frozen=True)
class Shared:
    """What every Observation of one SR carries."""

    doc: Document
    ctx: SrContext
    anchor: str
    status: str
    issued: str

    @classmethod
    def of(cls, doc: Document, ctx: SrContext) -> Shared:
        return cls(
            doc=doc,
            ctx=ctx,
            anchor=ctx.anchor_uid or doc.sop_instance,
            status=observation_status(doc.preliminary, doc.completion, doc.verification),
            issued=issued(doc.content_date, doc.content_time, offset=doc.tz_offset, ctx=ctx),
        )

    def effective(self, dt: str) -> str | None:
        d = self.doc
        return when(
            dt or d.root.observation_datetime,
            d.content_date,
            d.content_time,
            offset=d.tz_offset,
            ctx=self.ctx,
        )

    def base(self, rid: str, code: dict[str, Any], dt: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": rid,
            "basedOn": [{"reference": r} for r in self.ctx.based_on],
            "partOf": [self.ctx.study_reference],
            "status": self.status,
            "category": [IMAGING_CATEGORY],
            "code": code,
            "subject": {"reference": self.ctx.patient},
            "effectiveDateTime": self.effective(dt),
            "issued": self.issued,
            "derivedFrom": [self.ctx.study_reference],
        }


def group_resources(shared: Shared, group: MeasurementGroup, seen: dict[str, int]) -> list[dict[str, Any]]:
    """The group's panel Observation first, then its members. `seen` counts the keys of the
    document's groups: a tracking UID used by two groups numbers the second."""
    group_key = (
        f"group/{group.tracking_uid}"
        if group.tracking_uid
        else _item_key(group.observation_uid, group.position)
    )
    seen[group_key] = seen.get(group_key, 0) + 1
    if seen[group_key] > 1:
        group_key = f"{group_key}#{seen[group_key]}"
    tracking = _tracking(group)
    members: list[dict[str, Any]] = []
    repeats: dict[str, int] = {}
    for m in group.measurements:
        key = _measurement_key(group_key, group.tracking_uid, m, repeats)
        members.append(
            measurement_observation(
                shared, m, resource_id(shared.anchor, key), group=group, tracking=tracking
            )
        )
    for e in group.evaluations:
        key = _item_key(e.observation_uid, e.position)
        members.append(evaluation_observation(shared, e, resource_id(shared.anchor, key), tracking=tracking))
    panel = group_observation(shared, group, resource_id(shared.anchor, group_key), members, tracking)
    return [panel, *members]


def group_observation(
    shared: Shared,
    group: MeasurementGroup,
    rid: str,
    members: list[dict[str, Any]],
    tracking: list[dict[str, Any] | None],
) -> dict[str, Any]:
    body = shared.base(rid, {"coding": [GROUP_CODE], "text": "Measurement Group"}, group.observation_datetime)
    body["category"] = [IMAGING_CATEGORY, {"coding": [GROUP_CODE]}]
    body["identifier"] = [uid_identifier(group.observation_uid), *tracking]
    body["valueCodeableConcept"] = codeable(group.finding) if group.finding else None
    body["hasMember"] = [{"reference": f"Observation/{m['id']}"} for m in members]
    body["component"] = _site_and_method(body, group.sites, None, group.methods)
    body["extension"] = image_selections(shared.doc.study_instance, group.images, group.regions)
    return body


def measurement_observation(
    shared: Shared,
    m: Measurement,
    rid: str,
    *,
    group: MeasurementGroup | None = None,
    tracking: list[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    body = shared.base(rid, codeable(m.name), m.observation_datetime)
    body["identifier"] = [uid_identifier(m.observation_uid), *(tracking or [])]
    notes: list[str] = []
    value = quantity(m.measured, notes) if m.measured else None
    if value is not None:
        body["valueQuantity"] = value
    else:
        unreadable = bool(m.measured and m.measured.text)
        code = (
            _ABSENT.get(m.qualifier.value, "error") if m.qualifier else "error" if unreadable else "unknown"
        )
        body["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": code}]}
        if m.measured and m.measured.text:
            notes.append(f"value as written: {m.measured.text!r}")
    sites = m.sites or (group.sites if group else ())
    methods = m.methods or (group.methods if group else ())
    components = _site_and_method(body, sites, m.derivation, methods)
    components += [q for q in (_qualifier(q, notes) for q in m.qualifiers) if q]
    body["component"] = components
    body["note"] = [{"text": n} for n in notes]
    images = m.images or (group.images if group else ())
    regions = m.regions or (group.regions if group else ())
    body["extension"] = image_selections(shared.doc.study_instance, images, regions)
    return body


def evaluation_observation(
    shared: Shared, e: Evaluation, rid: str, *, tracking: list[dict[str, Any] | None]
) -> dict[str, Any]:
    body = shared.base(rid, codeable(e.name), "")
    body["identifier"] = [uid_identifier(e.observation_uid), *tracking]
    if e.code:
        body["valueCodeableConcept"] = codeable(e.code)
    elif e.text:
        body["valueString"] = e.text
    else:
        body["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": "unknown"}]}
    return body


def quantity(measured: Measured, notes: list[str]) -> dict[str, Any] | None:
    """A Quantity with the value as written; None when the value is no number."""
    if measured.decimal is None:
        return None
    unit = unit_from_code(measured.unit)
    out: dict[str, Any] = {"value": measured.decimal}
    if unit is None:
        return out
    out["unit"] = unit.display or unit.ucum or None
    if unit.ucum:
        out["system"], out["code"] = UCUM, unit.ucum
        if unit.respelled and measured.unit:
            notes.append(f"unit {measured.unit.value!r} read as UCUM {unit.ucum}")
    elif measured.unit:
        notes.append(f"unit {measured.unit.value!r} is not UCUM: kept as text")
    return out


def _site_and_method(
    body: dict[str, Any], sites: tuple[Site, ...], derivation: Code | None, methods: tuple[Code, ...]
) -> list[dict[str, Any]]:
    """bodySite and method on `body`; what they cannot hold, as components (returned)."""
    components: list[dict[str, Any]] = []
    if sites:
        body["bodySite"] = codeable(sites[0].code)
        components += [
            {"code": {"coding": [FINDING_SITE]}, "valueCodeableConcept": codeable(s.code)} for s in sites[1:]
        ]
        for s in sites:
            if s.laterality:
                components.append(
                    {"code": {"coding": [LATERALITY]}, "valueCodeableConcept": codeable(s.laterality)}
                )
            if s.modifier:
                components.append(
                    {"code": {"coding": [TOPOGRAPHICAL]}, "valueCodeableConcept": codeable(s.modifier)}
                )
    chosen = derivation or (methods[0] if methods else None)
    if chosen:
        body["method"] = codeable(chosen)
    rest = methods if derivation else methods[1:]
    components += [{"code": {"coding": [METHOD]}, "valueCodeableConcept": codeable(m)} for m in rest]
    return components


def _qualifier(q: Qualifier, notes: list[str]) -> dict[str, Any] | None:
    out: dict[str, Any] = {"code": codeable(q.name)}
    if q.code:
        out["valueCodeableConcept"] = codeable(q.code)
    elif q.measured and (value := quantity(q.measured, notes)):
        out["valueQuantity"] = value
    elif q.text:
        out["valueString"] = q.text
    else:
        return None
    return out


def _tracking(group: MeasurementGroup) -> list[dict[str, Any] | None]:
    tracking_id = (
        {"type": {"coding": [TRACKING_ID]}, "value": group.tracking_id} if group.tracking_id else None
    )
    return [uid_identifier(group.tracking_uid, type_code=TRACKING_UID), tracking_id]


def _item_key(observation_uid: str, position: str) -> str:
    return f"obs/{observation_uid}" if observation_uid else f"item/{position}"


def _measurement_key(group_key: str, tracking_uid: str, m: Measurement, seen: dict[str, int]) -> str:
    """Stable across corrections when the group has a tracking UID: the concept, derivation and
    method name the measurement; a repeat of the same names is numbered in order."""
    if m.observation_uid:
        return f"obs/{m.observation_uid}"
    if not tracking_uid:
        return f"item/{m.position}"
    names = [m.name, m.derivation, *m.methods]
    key = group_key + "/" + "/".join(f"{n.scheme}:{n.value}" if n else "-" for n in names)
    seen[key] = seen.get(key, 0) + 1
    return key if seen[key] == 1 else f"{key}#{seen[key]}"
