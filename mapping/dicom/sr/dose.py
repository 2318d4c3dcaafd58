"""Radiation dose SRs -> their accumulated totals (PS3.16 TID 10011 CT Radiation Dose and
TID 10012 CT Accumulated Dose Data; TID 10001 Projection X-Ray Radiation Dose, TID 10002
Accumulated X-Ray Dose Data, TID 10005 Accumulated Mammography X-Ray Dose).

Only the accumulated totals are read (what the HL7 Radiation Dose Summary IG reports, LOINC
73569-6); the irradiation events (113706 / 113819, thousands in a fluoroscopy RDSR) are counted,
not read, so a large report costs the reading of its tree and no more. Each total keeps its
value as written and is normalised to the unit its template names, exactly (`units.py`): a
vendor's `mGycm` is read as mGy.cm, a `dGy.cm2` DAP becomes Gy.m2 by a power of ten, and a unit
that cannot be read leaves the value with its unit as text, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mapping.dicom.sr import concepts as c
from mapping.dicom.sr.content import Code, ContentItem, Document
from mapping.dicom.sr.units import convert, unit_from_code

# The accumulated totals: DCM code -> (meaning, the template's UCUM unit; '' for counts)
TOTALS: dict[str, tuple[str, str]] = {
    "113813": ("CT Dose Length Product Total", "mGy.cm"),
    "113812": ("Total Number of Irradiation Events", ""),
    "113722": ("Dose Area Product Total", "Gy.m2"),
    "113726": ("Fluoro Dose Area Product Total", "Gy.m2"),
    "113727": ("Acquisition Dose Area Product Total", "Gy.m2"),
    "113725": ("Dose (RP) Total", "Gy"),
    "113728": ("Fluoro Dose (RP) Total", "Gy"),
    "113729": ("Acquisition Dose (RP) Total", "Gy"),
    "113730": ("Total Fluoro Time", "s"),
    "113855": ("Total Acquisition Time", "s"),
    "113731": ("Total Number of Radiographic Frames", ""),
    "111637": ("Accumulated Average Glandular Dose", "mGy"),
}
_ACCUMULATED = c.CT_ACCUMULATED | c.XRAY_ACCUMULATED | c.MAMMO_ACCUMULATED


@dataclass(frozen=True)
class DoseTotal:
    position: str
    code: str  # DCM code value, a key of TOTALS
    meaning: str
    value: Decimal | None  # in `unit` (converted exactly when the SR used another unit)
    text: str  # the value as written in the SR
    unit: str  # UCUM; '' when the SR's unit could not be read
    unit_text: str  # the unit as the SR named it (meaning or code)
    note: str = ""  # what normalisation did, '' when nothing
    plane: Code | None = None  # Acquisition Plane (113764) of a biplane system's totals (not Single Plane)
    laterality: Code | None = None  # the breast of a mammography total


@dataclass(frozen=True)
class DoseReport:
    kind: str  # "CT", "projection", "mammography" or "" (not said)
    procedure: Code | None  # Procedure reported (121058)
    totals: tuple[DoseTotal, ...]
    events: int  # irradiation event containers counted
    start: str  # Start of X-Ray Irradiation (113809) DT, '' when absent


def dose_report(doc: Document) -> DoseReport:
    """The accumulated totals of a dose SR, in document order; never raises."""
    procedure: Code | None = None
    totals: list[DoseTotal] = []
    events = 0
    start = ""
    for raw in doc.root.children:
        item = doc.resolve(raw)
        if item is None or item.name is None:
            continue
        if c.named(item, c.PROCEDURE_REPORTED) and procedure is None:
            procedure = item.code
        elif c.named(item, c.IRRADIATION_EVENTS):
            events += 1
        elif c.named(item, c.START_OF_IRRADIATION):
            start = item.text
        elif c.named(item, _ACCUMULATED):
            totals.extend(_totals(doc, item))
    kind = _kind(procedure, doc.template, totals)
    return DoseReport(kind, procedure, tuple(totals), events, start)


def _totals(doc: Document, container: ContentItem) -> list[DoseTotal]:
    plane = laterality = None
    found: list[ContentItem] = []
    stack = list(reversed(container.children))
    while stack:  # TID 10002 nests the fluoro / acquisition totals in TID 10004 / 10007 etc.
        item = doc.resolve(stack.pop())
        if item is None or item.name is None:
            continue
        if c.named(item, c.ACQUISITION_PLANE):
            plane = None if c.is_concept(item.code, c.SINGLE_PLANE) else item.code
        elif c.named(item, c.LATERALITY):
            laterality = item.code
        elif item.value_type == "NUM" and item.name.scheme.upper() == "DCM" and item.name.value in TOTALS:
            found.append(item)
        elif item.value_type == "CONTAINER" and not c.named(item, c.IRRADIATION_EVENTS):
            stack.extend(reversed(item.children))
    return [_total(doc, item, plane, laterality) for item in found]


def _total(doc: Document, item: ContentItem, plane: Code | None, laterality: Code | None) -> DoseTotal:
    assert item.name is not None
    meaning, target = TOTALS[item.name.value]
    for raw in item.children:  # TID 10005 qualifies each glandular dose with its breast
        child = doc.resolve(raw)
        if child is not None and c.named(child, c.LATERALITY) and child.code:
            laterality = child.code
    measured = item.measured
    if measured is None:
        return DoseTotal(
            item.position, item.name.value, meaning, None, "", target, "", "no value", plane, laterality
        )
    unit = unit_from_code(measured.unit)
    written = measured.unit.value if measured.unit else ""
    unit_text = unit.display if unit else ""
    value, ucum, notes = measured.decimal, unit.ucum if unit else "", []
    if value is None:
        notes.append(f"value {measured.text!r} is no number")
        doc.warnings.append(f"{item.position}: dose total {item.name.value} value is no number")
    if unit is not None and unit.respelled:
        notes.append(f"unit {written!r} read as {ucum}")
    if value is not None and ucum and target and ucum != target:
        converted = convert(value, ucum, target)
        if converted is not None:
            notes.append(f"{measured.text} {ucum} converted exactly to {target}")
            value, ucum = converted, target
        else:  # not a unit of this total's dimension (or not exactly): the unit stays text
            notes.append(f"unit {written!r} is not convertible exactly to {target}: kept as text")
            ucum = ""
    elif unit is not None and not ucum:
        notes.append(f"unit {written!r} is not UCUM: kept as text")
    return DoseTotal(
        item.position, item.name.value, meaning, value, measured.text, ucum, unit_text,
        "; ".join(notes), plane, laterality,
    )  # fmt: skip


def _kind(procedure: Code | None, template: str, totals: list[DoseTotal]) -> str:
    if c.is_concept(procedure, c.MAMMOGRAPHY) or any(t.code == "111637" for t in totals):
        return "mammography"
    if (
        c.is_concept(procedure, c.CT_PROCEDURE)
        or template == "10011"
        or any(t.code == "113813" for t in totals)
    ):
        return "CT"
    if c.is_concept(procedure, c.PROJECTION_XRAY) or template == "10001" or totals:
        return "projection"
    return ""
