"""A data set written in Little Endian (Implicit or Explicit VR) as pydicom's `write_dataset`
writes it, byte for byte, without its per-element machinery for the common case: text of ASCII
values, binary numbers and sequences. Every other element (a non-ASCII value, DS / IS, AT, the
bulk VRs, an ambiguous VR, a value too long for its length field) is written by pydicom's own
`write_data_element`, in place; a data set holding elements not yet decoded from a file is
written wholly by pydicom.

A C-FIND response of fifty worklist items took 15 ms with pydicom; responses are written one
per match, so this is most of a large answer's cost.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom import Dataset
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, PersonName

_TEXT = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_NUMBER = {"US": "H", "UL": "I", "SS": "h", "SL": "i", "FL": "f", "FD": "d"}
_LONG = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_TAG = struct.Struct("<HH")
_ITEM, _ITEM_END = b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0\0\0\0\0"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\0\0\0\0"
_UNDEFINED = b"\xff\xff\xff\xff"


class _Raw(Exception):
    """The data set holds elements as read from a file: pydicom writes it."""


def write(ds: Dataset, *, implicit_vr: bool) -> bytes:
    """`ds` in Little Endian, Implicit or Explicit VR, exactly as pydicom writes it."""
    out = bytearray()
    try:
        _dataset(out, ds, implicit_vr, default_encoding)
    except _Raw:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit_vr, True
        write_dataset(fp, ds)
        return bytes(fp.getvalue())
    return bytes(out)


def _dataset(out: bytearray, ds: Dataset, implicit: bool, parent_encoding: Any) -> None:
    encodings = ds.get("SpecificCharacterSet", parent_encoding)
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:  # retired group lengths are not written
            continue
        elem = ds.get_item(tag)
        if not isinstance(elem, DataElement):
            raise _Raw
        if not _element(out, elem, implicit, encodings):
            fp = DicomBytesIO()
            fp.is_implicit_VR, fp.is_little_endian = implicit, True
            write_data_element(fp, elem, encodings)
            out += fp.getvalue()


def _element(out: bytearray, elem: DataElement, implicit: bool, encodings: Any) -> bool:
    """Write `elem` to `out`; False (nothing written) when pydicom must."""
    vr = elem.VR
    if vr == "SQ":
        return _sequence(out, elem, implicit, encodings)
    if vr in _TEXT:
        value = _text(elem.value, vr)
    elif vr in _NUMBER:
        value = _numbers(elem.value, _NUMBER[vr])
    else:
        return False
    if value is None or (not implicit and vr not in _LONG and len(value) > 0xFFFF):
        return False
    _header(out, elem.tag, vr, len(value), implicit)
    out += value
    return True


def _text(value: object, vr: str) -> bytes | None:
    """The value's bytes, padded to even length; None when it is not plain ASCII text."""
    if value is None:
        return b""
    values = value if isinstance(value, MultiValue | list | tuple) else (value,)
    parts = []
    for v in values:
        if isinstance(v, PersonName) and not isinstance(v.original_string, bytes):
            part: object = str(v)
        else:
            part = v
        if not isinstance(part, str) or not part.isascii():
            return None
        parts.append(part)
    text = "\\".join(parts).encode("ascii")
    if len(text) % 2:
        text += b"\0" if vr == "UI" else b" "
    return text


def _numbers(value: object, code: str) -> bytes | None:
    if value is None or value == "":
        return b""
    values = value if isinstance(value, MultiValue | list | tuple) else (value,)
    if not all(type(v) in (int, float) for v in values):
        return None
    try:
        return struct.pack(f"<{len(values)}{code}", *values)
    except struct.error:
        return None


def _sequence(out: bytearray, elem: DataElement, implicit: bool, encodings: Any) -> bool:
    body = bytearray()
    for item in elem.value or ():
        body += _ITEM
        inner = bytearray()
        _dataset(inner, item, implicit, encodings)
        if getattr(item, "is_undefined_length_sequence_item", False):
            body += _UNDEFINED + inner + _ITEM_END
        else:
            body += struct.pack("<I", len(inner)) + inner
    undefined = elem.is_undefined_length
    _header(out, elem.tag, "SQ", 0xFFFFFFFF if undefined else len(body), implicit)
    out += body
    if undefined:
        out += _SEQUENCE_END
    return True


def _header(out: bytearray, tag: int, vr: str, length: int, implicit: bool) -> None:
    out += _TAG.pack(tag >> 16, tag & 0xFFFF)
    if implicit:
        out += struct.pack("<I", length)
    elif vr in _LONG:
        out += vr.encode() + b"\0\0" + struct.pack("<I", length)
    else:
        out += vr.encode() + struct.pack("<H", length)
