"""TID 1500 Measurement Report -> measurement groups and their measurements (PS3.16 TID 1500,
TID 1410 / 1411 / 1501 measurement groups, TID 300 measurement).

A `MeasurementGroup` is one CONTAINER Measurement Group (DCM 125007), wherever it sits (under
Imaging Measurements 126010 or Derived Imaging Measurements 126011): its tracking identifier
and UID, finding, finding sites (with laterality), method, the images and regions it was made on,
its NUM measurements and its qualitative (CODE / TEXT) evaluations. A `Measurement` is one NUM
with its derivation (mean / minimum / maximum / SD: its own measurement, never merged), method,
finding sites, image references and the qualifiers that describe it (HAS PROPERTIES, INFERRED
FROM numbers, other concept modifiers): those stay with the measurement, never become
measurements of their own.

NUMs outside any group (a comprehensive SR of another template) are read by `loose_measurements`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapping.dicom.sr import concepts as c
from mapping.dicom.sr.content import Code, ContentItem, Coords, Document, ImageRef, Measured


@dataclass(frozen=True)
class Site:
    """A Finding Site (SCT 363698007) and what modifies it."""

    code: Code
    laterality: Code | None = None
    modifier: Code | None = None  # Topographical Modifier (SCT 106233006)


@dataclass(frozen=True)
class Qualifier:
    """A content item that qualifies a measurement: its relationship, name and value."""

    relationship: str
    name: Code
    code: Code | None = None
    text: str = ""
    measured: Measured | None = None


@dataclass(frozen=True)
class Measurement:
    position: str
    name: Code
    measured: Measured | None  # None: no (readable) Measured Value Sequence
    qualifier: Code | None  # Numeric Value Qualifier (e.g. "Not a number")
    derivation: Code | None = None
    methods: tuple[Code, ...] = ()
    sites: tuple[Site, ...] = ()
    images: tuple[ImageRef, ...] = ()
    regions: tuple[tuple[Coords, tuple[ImageRef, ...]], ...] = ()  # a region and the image it is on
    qualifiers: tuple[Qualifier, ...] = ()
    observation_uid: str = ""
    observation_datetime: str = ""


@dataclass(frozen=True)
class Evaluation:
    """A qualitative evaluation (TID 1419 / 1501 CODE or TEXT in a group)."""

    position: str
    name: Code
    code: Code | None
    text: str
    observation_uid: str = ""


@dataclass(frozen=True)
class MeasurementGroup:
    position: str
    template: str
    tracking_id: str = ""
    tracking_uid: str = ""
    finding: Code | None = None
    sites: tuple[Site, ...] = ()
    methods: tuple[Code, ...] = ()
    images: tuple[ImageRef, ...] = ()
    regions: tuple[tuple[Coords, tuple[ImageRef, ...]], ...] = ()
    measurements: tuple[Measurement, ...] = ()
    evaluations: tuple[Evaluation, ...] = ()
    observation_uid: str = ""
    observation_datetime: str = ""


def measurement_groups(doc: Document) -> list[MeasurementGroup]:
    """Every Measurement Group of the report, in document order."""
    return [
        _group(doc, item)
        for item in doc.walk()
        if item.value_type == "CONTAINER" and c.named(item, c.MEASUREMENT_GROUP)
    ]


def loose_measurements(doc: Document) -> list[Measurement]:
    """NUMs that belong to no Measurement Group (nor sit under another NUM as its qualifier)."""
    out: list[Measurement] = []
    stack = [doc.root]
    while stack:
        item = stack.pop()
        if item.value_type == "CONTAINER" and c.named(item, c.MEASUREMENT_GROUP):
            continue
        for child in reversed(item.children):
            resolved = doc.resolve(child)
            if resolved is None or resolved is not child:
                continue  # a reference names an item read in its own place
            if child.value_type == "NUM" and child.relationship in ("CONTAINS", "") and child.name:
                out.append(_measurement(doc, child))
            else:
                stack.append(child)
    out.sort(key=lambda m: _order(m.position))
    return out


def _group(doc: Document, item: ContentItem) -> MeasurementGroup:
    tracking_id = tracking_uid = ""
    finding: Code | None = None
    sites: list[Site] = []
    methods: list[Code] = []
    images: list[ImageRef] = []
    regions: list[tuple[Coords, tuple[ImageRef, ...]]] = []
    measurements: list[Measurement] = []
    evaluations: list[Evaluation] = []
    for raw in item.children:
        child = doc.resolve(raw)
        if child is None or child.name is None:
            continue
        if c.named(child, c.TRACKING_ID):
            tracking_id = child.text
        elif c.named(child, c.TRACKING_UID):
            tracking_uid = child.text
        elif c.named(child, c.FINDING):
            finding = child.code
        elif c.named(child, c.FINDING_SITE) and child.code:
            sites.append(_site(doc, child))
        elif c.named(child, c.MEASUREMENT_METHOD) and child.code:
            methods.append(child.code)
        elif child.value_type == "NUM":
            measurements.append(_measurement(doc, child))
        elif child.value_type in ("IMAGE", "COMPOSITE"):
            images.extend(child.images)
        elif child.value_type in ("SCOORD", "SCOORD3D") and child.coords:
            regions.append((child.coords, _images_below(doc, child)))
        elif child.value_type in ("CODE", "TEXT") and child.relationship == "CONTAINS":
            evaluations.append(
                Evaluation(child.position, child.name, child.code, child.text, child.observation_uid)
            )
    return MeasurementGroup(
        position=item.position,
        template=item.template,
        tracking_id=tracking_id,
        tracking_uid=tracking_uid,
        finding=finding,
        sites=tuple(sites),
        methods=tuple(methods),
        images=tuple(images),
        regions=tuple(regions),
        measurements=tuple(measurements),
        evaluations=tuple(evaluations),
        observation_uid=item.observation_uid,
        observation_datetime=item.observation_datetime,
    )


def _measurement(doc: Document, item: ContentItem) -> Measurement:
    assert item.name is not None  # callers pass named NUMs
    derivation: Code | None = None
    methods: list[Code] = []
    sites: list[Site] = []
    images: list[ImageRef] = []
    regions: list[tuple[Coords, tuple[ImageRef, ...]]] = []
    qualifiers: list[Qualifier] = []
    for raw in item.children:
        child = doc.resolve(raw)
        if child is None or child.name is None:
            continue
        if c.named(child, c.DERIVATION) and child.code:
            derivation = child.code
        elif c.named(child, c.MEASUREMENT_METHOD) and child.code:
            methods.append(child.code)
        elif c.named(child, c.FINDING_SITE) and child.code:
            sites.append(_site(doc, child))
        elif child.value_type in ("IMAGE", "COMPOSITE"):
            images.extend(child.images)
        elif child.value_type in ("SCOORD", "SCOORD3D") and child.coords:
            regions.append((child.coords, _images_below(doc, child)))
        elif c.named(child, c.CONTEXT_ONLY):
            continue
        elif child.value_type in ("NUM", "CODE", "TEXT", "DATETIME", "DATE", "UIDREF", "PNAME"):
            qualifiers.append(
                Qualifier(child.relationship, child.name, child.code, child.text, child.measured)
            )
    return Measurement(
        position=item.position,
        name=item.name,
        measured=item.measured,
        qualifier=item.qualifier,
        derivation=derivation,
        methods=tuple(methods),
        sites=tuple(sites),
        images=tuple(images),
        regions=tuple(regions),
        qualifiers=tuple(qualifiers),
        observation_uid=item.observation_uid,
        observation_datetime=item.observation_datetime,
    )


def _site(doc: Document, item: ContentItem) -> Site:
    assert item.code is not None
    laterality = modifier = None
    for raw in item.children:
        child = doc.resolve(raw)
        if child is None:
            continue
        if c.named(child, c.LATERALITY):
            laterality = child.code
        elif c.named(child, c.TOPOGRAPHICAL_MODIFIER):
            modifier = child.code
    return Site(item.code, laterality, modifier)


def _images_below(doc: Document, item: ContentItem) -> tuple[ImageRef, ...]:
    """The images a SCOORD is SELECTED FROM (its IMAGE children)."""
    out: list[ImageRef] = []
    for raw in item.children:
        child = doc.resolve(raw)
        if child is not None and child.value_type in ("IMAGE", "COMPOSITE"):
            out.extend(child.images)
    return tuple(out)


def _order(position: str) -> tuple[int, ...]:
    return tuple(int(p) for p in position.split("."))
