"""A C-FIND pending response's identifier (PS3.4 C.4.1.1.3.2), with one plan's layout worked out
once: as a data set (`query_keys.response_identifier`, what pynetdicom's path sends), or written
straight to the bytes `frozen.encode` writes of that data set (the facade's own path).

Building a pydicom data set and writing it cost ~0.3 ms a match, most of a large answer's time.
Here the elements' headers are laid out once per query, in tag order, and each match's values
are written behind them. That covers a match whose values are all ASCII (then no Specific
Character Set is returned), in Little Endian, of the VRs the index's keys have and any VR left
empty; anything else (a non-ASCII name, a deflated or big endian syntax, a value pydicom would
write otherwise) is written from the data set, so the bytes are the same either way (a test
holds them to it).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from mapping.dicom.frozen import encode
from mapping.dicom.matching import trimmed_name
from mapping.dicom.query_keys import FindPlan, held_field, response_identifier, vr_of

_TEXT = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_BINARY = {vr: struct.Struct(f"<{code}") for vr, code in (("US", "H"), ("UL", "I"), ("SS", "h"), ("SL", "i"))}
_LONG = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_TAG = struct.Struct("<HH")
_SHORT, _LENGTH = struct.Struct("<H"), struct.Struct("<I")
_IS_MAX = 2**31 - 1  # IS is a signed 32-bit integer (PS3.5 6.2)
_LAID_OUT: dict[str, bool | None] = {}  # transfer syntax -> Implicit VR, or None: not written here


# how a text VR's value of odd length is padded (PS3.5 6.2): a UI with NUL, the others (and a
# PN, trimmed first) with a space; 0: not a text VR
_SPACE, _NUL, _NAME = 1, 2, 3
_PADS = {vr: _NUL if vr == "UI" else _SPACE for vr in _TEXT}


class _Other(Exception):
    """This match is written from its data set."""


_Step = tuple["_Element | None", bytes, int, bool]  # element (None: constant), header or bytes, pad, long


@dataclass(frozen=True)
class _Element:
    tag: int
    vr: str
    field: str | None  # the record's field holding the value; None: always empty
    constant: str = ""  # the value when there is no field (QueryRetrieveLevel, RetrieveAETitle)

    def head(self, implicit: bool) -> bytes:
        """What precedes the length: the tag, and in Explicit VR the VR (and its reserved bytes)."""
        tag = _TAG.pack(self.tag >> 16, self.tag & 0xFFFF)
        if implicit:
            return tag
        return tag + self.vr.encode() + (b"\0\0" if self.vr in _LONG else b"")


class FindIdentifiers:
    """The response identifiers of one plan's matches."""

    def __init__(self, plan: FindPlan, *, retrieve_ae: str | None) -> None:
        self._plan, self._retrieve_ae = plan, retrieve_ae
        elements = [_Element(0x00080052, "CS", None, plan.level)]  # QueryRetrieveLevel
        if retrieve_ae is not None:
            elements.append(_Element(0x00080054, "AE", None, retrieve_ae))  # RetrieveAETitle
        for keyword in plan.returned:
            tag = tag_for_keyword(keyword)
            if tag is None:
                continue
            elements.append(_Element(tag, vr_of(keyword), held_field(keyword, plan.level)))
        elements.sort(key=lambda e: e.tag)
        self._elements = tuple(elements)
        self._plain = all(
            (e.vr in _TEXT or e.vr in _BINARY or e.vr in ("IS", "SQ") or (e.field is None and len(e.vr) == 2))
            and e.constant.isascii()
            for e in elements
        )
        self._steps = {implicit: self._layout(implicit) if self._plain else [] for implicit in (True, False)}

    def _layout(self, implicit: bool) -> list[_Step]:
        """Each element in tag order: those with a field of the record, with their header (and
        how a text value is padded); the others written whole once."""
        steps: list[_Step] = []
        for element in self._elements:
            head = element.head(implicit)
            if element.field is None:
                steps.append((None, _value(element, head, element.constant, implicit), 0, False))
                continue
            pad = _PADS.get(element.vr, 0) if element.vr != "PN" else _NAME
            steps.append((element, head, pad, implicit or element.vr in _LONG))
        return steps

    def dataset(self, record: Mapping[str, object], stored_charset: str) -> Dataset:
        """The identifier as a data set (`query_keys.response_identifier`)."""
        return response_identifier(
            self._plan, record, stored_charset=stored_charset, retrieve_ae=self._retrieve_ae
        )

    def encoded(self, record: Mapping[str, object], stored_charset: str, syntax: UID) -> bytes:
        """The identifier in the transfer syntax `syntax`, as `frozen.encode` writes `dataset`."""
        implicit = _LAID_OUT.get(syntax)
        if implicit is None and syntax not in _LAID_OUT:
            implicit = _LAID_OUT[syntax] = (
                syntax.is_implicit_VR if syntax.is_little_endian and not syntax.is_deflated else None
            )
        if implicit is not None:
            data = self.written(record, implicit=implicit)
            if data is not None:
                return data
        return encode(self.dataset(record, stored_charset), syntax)

    def written(self, record: Mapping[str, object], *, implicit: bool) -> bytes | None:
        """The identifier in Little Endian, Implicit or Explicit VR, written from the layout;
        None when it is to be written from its data set (see the module's doc)."""
        if not self._plain:
            return None
        out = bytearray()
        get = record.get
        try:
            for element, written, pad, long in self._steps[implicit]:
                if element is None:
                    out += written
                    continue
                value = get(element.field or "")
                if pad and type(value) is str and value and value.isascii():
                    # a text value (the usual case), as `_value` writes it
                    data = (trimmed_name(value) if pad == _NAME else value).encode()
                    if len(data) & 1:
                        data += b"\0" if pad == _NUL else b" "
                    if long:
                        out += written + _LENGTH.pack(len(data)) + data
                    elif len(data) <= 0xFFFF:
                        out += written + _SHORT.pack(len(data)) + data
                    else:
                        raise _Other
                    continue
                text = value if type(value) is str else "" if value is None else str(value)
                out += _value(element, written, text, implicit)
        except _Other:
            return None
        return bytes(out)


def _value(element: _Element, head: bytes, text: str, implicit: bool) -> bytes:
    """One element: its header, then `text` as its VR's value (raises `_Other` for what the data
    set's way writes)."""
    vr = element.vr
    if not text or vr == "SQ":
        value = b""
    elif not text.isascii():
        raise _Other  # a character set to choose: the data set's way
    elif vr in _TEXT:
        value = (trimmed_name(text) if vr == "PN" else text).encode()
        if len(value) % 2:
            value += b"\0" if vr == "UI" else b" "
    elif vr == "IS":
        value = _integer_string(text)
    else:
        value = _binary(vr, text)
    length = len(value)
    if implicit or vr in _LONG:
        return head + _LENGTH.pack(length) + value
    if length > 0xFFFF:
        raise _Other
    return head + _SHORT.pack(length) + value


def _integer_string(text: str) -> bytes:
    """An IS value as pydicom writes a canonical integer (padded with a space)."""
    if not text.isdigit() or str(int(text)) != text or int(text) > _IS_MAX:
        raise _Other
    data = text.encode()
    return data + b" " if len(data) % 2 else data


def _binary(vr: str, text: str) -> bytes:
    codec = _BINARY.get(vr)
    if codec is None or not text.isdigit():
        raise _Other
    try:
        return codec.pack(int(text))
    except struct.error:
        raise _Other from None


@dataclass(frozen=True, slots=True)
class Identifier:
    """One match's identifier, built or written when the path sending it asks; the record's
    `charset` is the character set its instances were stored in."""

    identifiers: FindIdentifiers
    record: Mapping[str, object]

    def dataset(self) -> Dataset:
        return self.identifiers.dataset(self.record, str(self.record.get("charset") or ""))

    def encoded(self, syntax: UID) -> bytes:
        return self.identifiers.encoded(self.record, str(self.record.get("charset") or ""), syntax)
