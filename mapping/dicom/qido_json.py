"""QIDO-RS matches in the DICOM JSON Model (PS3.18 F.2), written as text straight from the plan's
layout: numbers as numbers (F.2.3), person names as their component groups (F.2.2), an empty
value as the VR alone, attributes in tag order, and each match's RetrieveURL (0008,1190).

What pydicom's `Dataset.to_json_dict` gives of the C-FIND response identifier, serialized
(`tests/mapping/dicom/test_qido_json.py`), without building an object per attribute: the layout
(each attribute's `"tag":{"vr":"XX"` and where its value comes from) is worked out once per shape
of query, and a match is its values escaped by `json`'s own string encoder. Building the objects
and `json.dumps` of them had been three quarters of a 200-match search's time in the endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring  # C; not ASCII-only, as json.dumps(ensure_ascii=False)

from pydicom.datadict import tag_for_keyword

from mapping.dicom.matching import trimmed_name
from mapping.dicom.query_keys import MULTI_VALUED, FindPlan, Level, held_field, vr_of

RETRIEVE_URL = "00081190"
_NUMBERS = frozenset({"IS", "US", "UL", "SS", "SL", "UV", "SV"})
_GROUPS = ('"Alphabetic":', '"Ideographic":', '"Phonetic":')
_TEXT, _NAME, _NUMBER, _LIST, _URL = range(5)


@dataclass(frozen=True)
class _Slot:
    head: str  # '"00100010":{"vr":"PN"'
    field: str | None  # of the match record; None: never a value (not held at this level, a sequence)
    kind: int


def matches_json(plan: FindPlan, records: Iterable[tuple[Mapping[str, object], str]]) -> str:
    """A JSON array of the matches (record, RetrieveURL)."""
    slots = _layout(plan.level, plan.returned)
    return "[" + ",".join([_object(slots, record, url) for record, url in records]) + "]"


def match_json(plan: FindPlan, record: Mapping[str, object], retrieve_url: str) -> str:
    """One match as a JSON object."""
    return _object(_layout(plan.level, plan.returned), record, retrieve_url)


def _object(slots: tuple[_Slot, ...], record: Mapping[str, object], url: str) -> str:
    parts = []
    for slot in slots:
        kind = slot.kind
        if kind == _URL:
            parts.append(f'{slot.head},"Value":[{encode_basestring(url)}]}}')
            continue
        value = None if slot.field is None else record.get(slot.field)
        text = value if type(value) is str else "" if value is None else str(value)
        if kind == _NAME and text:
            text = trimmed_name(text)
        if not text:
            parts.append(slot.head + "}")
        elif kind == _TEXT:
            parts.append(f'{slot.head},"Value":[{encode_basestring(text)}]}}')
        elif kind == _NAME:
            groups = ",".join(
                [g + encode_basestring(v) for g, v in zip(_GROUPS, text.split("=")[:3], strict=False) if v]
            )
            parts.append(f'{slot.head},"Value":[{{{groups}}}]}}')
        elif kind == _NUMBER:
            parts.append(f'{slot.head},"Value":[{int(text)}]}}')
        else:
            values = ",".join([encode_basestring(v) for v in text.split("\\")])
            parts.append(f'{slot.head},"Value":[{values}]}}')
    return "{" + ",".join(parts) + "}"


@lru_cache(maxsize=256)
def _layout(level: Level, returned: tuple[str, ...]) -> tuple[_Slot, ...]:
    """Each attribute of a match of `returned` at `level`, in tag order, with the RetrieveURL."""
    slots = {RETRIEVE_URL: _Slot(f'"{RETRIEVE_URL}":{{"vr":"UR"', None, _URL)}
    for keyword in returned:
        tag = tag_for_keyword(keyword)
        if tag is None or f"{tag:08X}" == RETRIEVE_URL:
            continue
        vr = vr_of(keyword)
        field = held_field(keyword, level) if vr != "SQ" else None
        slots[f"{tag:08X}"] = _Slot(f'"{tag:08X}":{{"vr":"{vr}"', field, _kind(vr, field))
    return tuple(slot for _, slot in sorted(slots.items()))


def _kind(vr: str, field: str | None) -> int:
    if field in MULTI_VALUED:
        return _LIST
    if vr == "PN":
        return _NAME
    return _NUMBER if vr in _NUMBERS else _TEXT
