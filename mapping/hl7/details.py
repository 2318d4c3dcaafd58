"""What an order or ADT message says about the patient's condition and visit, for the worklist
(reference §2, dcm4chee's extensions of IHE RAD TF-2x Appendix B):

- Allergies (0010,2110): AL1-3 (the allergen's text, else its code), one value per AL1;
- Patient's Weight (0010,1030), kg: an OBX whose OBX-3 is LOINC 29463-7 / 3141-9 / 8335-2 or
  "BODY WEIGHT", OBX-5 in the OBX-6 unit kg, g, lb or oz;
- Patient's Size (0010,1020), m: OBX-3 LOINC 8302-2 / 3137-7 / 8306-3 / 8308-9 or "BODY
  HEIGHT", OBX-6 m, cm, mm, in or ft (no unit: kg and m, the units of those LOINC codes);
- Current Patient Location (0038,0300): PV1-3 (point of care^room^bed);
- Route of Admissions (0038,0016): PV1-2 (patient class, HL7 table 0004, as sent);
- Admission ID (0038,0010): PV1-19, else PID-18.

Only what a message carries is returned (`Details.sent`), so an ADT^A08 changes what it sends
and leaves the rest; HL7's explicit null `""` clears. An OBX-6 unit we cannot convert, or an
OBX-5 that is not a number, is refused with AE naming the field: a weight read in the wrong unit
is a wrong contrast dose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from mapping.hl7.er7 import Er7Message, Segment
from mapping.hl7.errors import DATA_TYPE, TABLE_VALUE, Hl7Error

_WEIGHT_CODES = frozenset({"29463-7", "3141-9", "8335-2"})
_HEIGHT_CODES = frozenset({"8302-2", "3137-7", "8306-3", "8308-9"})
# UCUM and the spellings senders use -> factor to kg / m
_KG = {"KG": "1", "G": "0.001", "LB": "0.45359237", "LBS": "0.45359237", "[LB_AV]": "0.45359237"}
_KG |= {"OZ": "0.028349523125", "[OZ_AV]": "0.028349523125"}
_M = {"M": "1", "CM": "0.01", "MM": "0.001", "IN": "0.0254", "[IN_I]": "0.0254", "FT": "0.3048"}
_M |= {"[FT_I]": "0.3048"}
_NOT_VALID = frozenset({"D", "X", "W"})  # OBX-11: deleted, cannot be obtained, wrong patient


@dataclass(frozen=True)
class Details:
    """The values sent, by `RequestedProcedure` field name (absent: not sent)."""

    sent: dict[str, Any] = field(default_factory=dict)


def patient_details(message: Er7Message) -> Details:
    sent: dict[str, Any] = {}
    allergies = message.all("AL1")
    if allergies:
        texts = (a.value(3, 2).strip() or a.value(3, 1).strip() for a in allergies)
        sent["allergies"] = tuple(t for t in texts if t)
    pv1, pid = message.first("PV1"), message.first("PID")
    if pv1 is not None:
        if pv1.raw(3):
            location = [pv1.value(3, c).strip() for c in (1, 2, 3)]
            sent["current_location"] = "^".join(location).rstrip("^")
        if pv1.raw(2):
            sent["route_of_admissions"] = pv1.value(2).strip()
    admission = _sent(pv1, 19) if pv1 is not None and pv1.raw(19) else _sent(pid, 18)
    if admission is not None:
        sent["admission_id"] = admission
    for obx in message.all("OBX"):
        kind = _measure(obx)
        if kind is not None and obx.value(11).strip().upper() not in _NOT_VALID:
            sent[kind] = _measured(obx, kind)
    return Details(sent)


def _sent(segment: Segment | None, n: int) -> str | None:
    if segment is None or not segment.raw(n):
        return None
    return segment.value(n).strip()


def _measure(obx: Segment) -> str | None:
    code, text = obx.value(3, 1).strip(), obx.value(3, 2).strip().upper()
    if code in _WEIGHT_CODES or text == "BODY WEIGHT" or code.upper() == "BODY WEIGHT":
        return "weight"
    if code in _HEIGHT_CODES or text == "BODY HEIGHT" or code.upper() == "BODY HEIGHT":
        return "size"
    return None


def _measured(obx: Segment, kind: str) -> str:
    """OBX-5 in OBX-6's unit as a DICOM DS in kg or m ('' for an explicit null)."""
    if obx.is_null(5):
        return ""
    try:
        value = Decimal(obx.value(5).strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise Hl7Error.error(
            DATA_TYPE,
            f"OBX-5 of a body {_NAME[kind]} is not a number",
            segment="OBX",
            sequence=obx.sequence,
            field=5,
        )
    units = _KG if kind == "weight" else _M
    unit = (obx.value(6, 1).strip() or obx.value(6, 2).strip()).upper() or ("KG" if kind == "weight" else "M")
    if unit not in units:
        raise Hl7Error.error(
            TABLE_VALUE,
            f"OBX-6: a body {_NAME[kind]} in a unit we cannot convert",
            segment="OBX",
            sequence=obx.sequence,
            field=6,
        )
    converted = (value * Decimal(units[unit])).quantize(Decimal("0.001")).normalize()
    return format(converted, "f")[:16]


_NAME = {"weight": "weight", "size": "height"}
