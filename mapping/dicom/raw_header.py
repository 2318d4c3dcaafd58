"""A few top-level elements of a data set, read by keyword as pydicom reads them (PS3.5 6.1, 7.1).

`RawHeader` stands in for a pydicom `Dataset` where the index's facts are taken
(`facts.header_from_dataset`): `get(keyword)` answers what `Dataset.get(keyword)` would, by the
same converters (`pydicom.values.convert_value`, `read_sequence` for sequences, the data set's
Specific Character Set for text), without building the rest of the data set. Pure: the caller
found the value bytes (`storage.element_scan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from io import BytesIO
from typing import Any, NamedTuple

from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.filereader import read_sequence
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName
from pydicom.values import convert_value

_CHARSET = 0x00080005
_ASCII = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # decoded as pydicom does, by `_strings`
_TEXT = frozenset({"LO", "SH", "UC"})  # text split on backslashes: `_strings` too, when plain ASCII
# Character sets whose decoding of bytes below 0x80 (no ESC: no ISO 2022 switch) is plain ASCII
_ASCII_COMPATIBLE = frozenset({"iso8859", "latin_1", "utf_8", "iso_ir_6", "ascii"})
_UNDEFINED = 0xFFFFFFFF


class Raw(NamedTuple):
    vr: str | None  # as written in the file; None in Implicit VR
    value: bytes  # an undefined-length value with its sequence delimitation item
    undefined: bool = False


class RawHeader:
    """The elements of `keywords` found in one data set, converted on first access."""

    def __init__(
        self, keywords: tuple[str, ...], elements: Mapping[int, Raw], *, implicit: bool, transfer_syntax: str
    ) -> None:
        """ValueError when an element's VR differs from the dictionary's (pydicom corrects such
        files as it reads them: read those with pydicom)."""
        self._tags, self._vrs = _dictionary(keywords)
        for tag, raw in elements.items():
            if tag not in self._vrs:
                raise ValueError("an element that was not asked for")
            if raw.vr is not None and raw.vr != self._vrs[tag]:
                raise ValueError("a VR other than the dictionary's")
        self._elements, self._implicit = elements, implicit
        self._values: dict[int, Any] = {}
        self.file_meta = {"TransferSyntaxUID": transfer_syntax}
        self._encodings: list[str] = ["iso8859"]  # pydicom's default: no Specific Character Set
        if _CHARSET in elements:  # CS: read without an encoding
            self._encodings = convert_encodings(self._value(_CHARSET) or None)
        # plain ASCII text then decodes as pydicom would decode it, without its validation
        self._plain = len(self._encodings) == 1 and self._encodings[0] in _ASCII_COMPATIBLE

    def get(self, keyword: str, default: Any = None) -> Any:
        tag = self._tags[keyword]  # KeyError: a keyword not read (facts.HEADER_KEYWORDS drifted)
        if tag not in self._elements:
            return default
        return self._value(tag)

    def __contains__(self, keyword: str) -> bool:
        return self._tags[keyword] in self._elements

    def _value(self, tag: int) -> Any:
        if tag in self._values:
            return self._values[tag]
        raw, vr = self._elements[tag], self._vrs[tag]
        if vr == "SQ":
            length = _UNDEFINED if raw.undefined else len(raw.value)
            value: Any = read_sequence(BytesIO(raw.value), self._implicit, True, length, self._encodings)
        elif vr in _ASCII and raw.value:
            value = _strings(raw.value)
        elif vr == "US" and len(raw.value) == 2:
            value = int.from_bytes(raw.value, "little")
        elif vr == "IS" and (number := _integer(raw.value)) is not None:
            value = number
        elif vr in _TEXT and self._plain and raw.value.isascii() and b"\x1b" not in raw.value:
            value = _strings(raw.value)
        elif vr == "PN" and self._plain and raw.value.isascii() and b"\x1b" not in raw.value:
            names = raw.value.rstrip(b"\x00 ").decode("ascii").split("\\")
            value = PersonName(names[0]) if len(names) == 1 else MultiValue(PersonName, names)
        else:
            element = RawDataElement(BaseTag(tag), vr, len(raw.value), raw.value, 0, self._implicit, True)
            value = convert_value(vr, element, self._encodings)
        self._values[tag] = value
        return value


def _integer(value: bytes) -> int | None:
    """A single IS value of digits (and a sign) as pydicom reads it (an `IS`, equal to this int);
    None for anything else (several values, a decimal point, empty): `convert_value` decides."""
    text = value.strip(b" \x00")
    digits = text[1:] if text[:1] in (b"+", b"-") else text
    if not digits.isdigit() or not digits.isascii() or len(text) > 12:
        return None
    return int(text)


def _strings(value: bytes) -> str | MultiValue[str]:
    """What pydicom's `convert_string` / `convert_UI` make of an AS, CS, DA, DT, TM or UI value
    (without date and time conversion, pydicom's default): the default character repertoire,
    trailing spaces and NULs removed, backslash-separated values."""
    items = value.decode("latin-1").rstrip(" \x00").split("\\")
    return items[0] if len(items) == 1 else MultiValue(str, items)


@cache
def _dictionary(keywords: tuple[str, ...]) -> tuple[dict[str, int], dict[int, str]]:
    tags = {keyword: _tag(keyword) for keyword in keywords}
    return tags, {tag: dictionary_VR(tag) for tag in tags.values()}


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"no such keyword: {keyword}")
    return int(tag)
