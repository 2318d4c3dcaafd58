"""What every resource mapped from one SR shares: the context (`SrContext`), ids, status,
times, and how image references travel in R4 (`image_selections`).

Ids are deterministic: a UUID v5 of the document's anchor UID and the item's key, so a re-sent
SR yields the same ids and the store versions the resources instead of duplicating them. The
anchor is the SR's SOP Instance UID, or what the caller names (`SrContext.anchor_uid`: the first
document of a chain of corrections, when the use case knows it from Predecessor Documents
(0040,A360)). Keys prefer what survives a correction: the Observation UID (0040,A171), then the
Tracking Unique Identifier (DCM 112040) with the concept, derivation and method; the item's
position last.

Image references in R4: there is no ImagingSelection (R5), so each Observation
- names the ImagingStudy in `derivedFrom` (and `partOf`, as the HL7 DICOM SR guide does), and
- carries each set of referenced instances, and each region (SCOORD / SCOORD3D) with the images
  it is on, as one extension `IMAGE_SELECTION` whose parts mirror R5 ImagingSelection element by
  element: `studyUid`, `instance` (`uid`, `sopClass`, `frame`*, `segment`*), `regionType`,
  `coordinate`*, `frameOfReferenceUid`, so it moves to ImagingSelection one to one.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from mapping.dicom.dates import fhir_datetime, fhir_dt
from mapping.dicom.sr.content import Coords, ImageRef
from mapping.dicom.uid import is_oid

DICOM_UID = "urn:dicom:uid"
# The extension's canonical; the project publishes no StructureDefinition yet (docs/README).
IMAGE_SELECTION = "urn:fhir-imaging-facade:extension:image-selection"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
IMAGING_CATEGORY = {"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}


@dataclass(frozen=True)
class SrContext:
    """What the caller knows and the SR does not say: who, which study, which orders, when."""

    patient: str  # "Patient/<id>"
    imaging_study: str  # the ImagingStudy's id
    now: datetime  # aware; `issued` when the SR has no full content date and time
    based_on: tuple[str, ...] = ()  # "ServiceRequest/<id>"
    site_zone: tzinfo = UTC  # DICOM times without an offset are the site's local time
    anchor_uid: str = ""  # '' = the SR's own SOP Instance UID

    @property
    def study_reference(self) -> dict[str, str]:
        return {"reference": f"ImagingStudy/{self.imaging_study}"}


def resource_id(anchor: str, key: str) -> str:
    """A FHIR id (36 characters) that depends only on the anchor UID and the key."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{anchor}/{key}"))


def uid_identifier(uid: str, *, type_code: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A DICOM UID as an Identifier (urn:dicom:uid, value urn:oid:...); None when malformed."""
    if not is_uid(uid):
        return None
    out: dict[str, Any] = {"system": DICOM_UID, "value": f"urn:oid:{uid}"}
    if type_code:
        out["type"] = {"coding": [type_code], "text": type_code.get("display")}
    return out


def is_uid(uid: str) -> bool:
    return len(uid) <= 64 and is_oid(uid)


def observation_status(preliminary: str, completion: str, verification: str) -> str:
    """Preliminary Flag (0040,A496) first; without it, COMPLETE and VERIFIED -> final."""
    if preliminary == "PRELIMINARY":
        return "preliminary"
    if preliminary == "FINAL":
        return "final"
    return "final" if completion == "COMPLETE" and verification == "VERIFIED" else "preliminary"


def report_status(preliminary: str, completion: str, verification: str) -> str:
    """DiagnosticReport.status: PARTIAL -> partial; COMPLETE + VERIFIED -> final; else preliminary."""
    if completion == "PARTIAL":
        return "partial"
    if preliminary == "PRELIMINARY":
        return "preliminary"
    return "final" if completion == "COMPLETE" and verification == "VERIFIED" else "preliminary"


def when(dt: str, date: str, time: str, *, offset: str, ctx: SrContext) -> str | None:
    """An item's Observation DateTime, else the document's content date and time."""
    return (fhir_dt(dt, offset=offset, site_zone=ctx.site_zone) if dt else None) or (
        fhir_datetime(date, time, offset=offset, site_zone=ctx.site_zone) if date else None
    )


def issued(date: str, time: str, *, offset: str, ctx: SrContext) -> str:
    """An instant: the content date and time when both are there, else `now`."""
    value = fhir_datetime(date, time, offset=offset, site_zone=ctx.site_zone) if date and time else None
    if value and "T" in value:
        return value
    return ctx.now.isoformat(timespec="seconds").replace("+00:00", "Z")


def image_selections(
    study_uid: str,
    images: tuple[ImageRef, ...],
    regions: tuple[tuple[Coords, tuple[ImageRef, ...]], ...],
) -> list[dict[str, Any]]:
    """The IMAGE_SELECTION extensions: one for the referenced instances, one per region."""
    out = []
    instances = [i for i in (_instance(r) for r in images) if i]
    if instances:
        out.append(_selection(study_uid, instances, []))
    for coords, on in regions:
        region: list[dict[str, Any]] = [
            {"url": "regionType", "valueCode": coords.graphic_type.lower() or None}
        ]
        region += [
            {"url": "coordinate", "valueDecimal": Decimal(repr(p))} for p in coords.points if math.isfinite(p)
        ]
        if is_uid(coords.frame_of_reference):
            region.append({"url": "frameOfReferenceUid", "valueOid": f"urn:oid:{coords.frame_of_reference}"})
        out.append(_selection(study_uid, [i for i in (_instance(r) for r in on) if i], region))
    return out


def _selection(
    study_uid: str, instances: list[dict[str, Any]], region: list[dict[str, Any]]
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if is_uid(study_uid):
        parts.append({"url": "studyUid", "valueOid": f"urn:oid:{study_uid}"})
    parts += instances + region
    return {"url": IMAGE_SELECTION, "extension": parts}


def _instance(ref: ImageRef) -> dict[str, Any] | None:
    if not is_uid(ref.sop_instance):
        return None
    parts: list[dict[str, Any]] = [{"url": "uid", "valueOid": f"urn:oid:{ref.sop_instance}"}]
    if is_uid(ref.sop_class):
        coding = {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{ref.sop_class}"}
        parts.append({"url": "sopClass", "valueCoding": coding})
    parts += [{"url": "frame", "valuePositiveInt": f} for f in ref.frames if f > 0]
    parts += [{"url": "segment", "valuePositiveInt": s} for s in ref.segments if s > 0]
    return {"url": "instance", "extension": parts}
