"""Walking a Part 10 data set's elements without pydicom: the value bytes of a few top-level tags
and the proof that every element ends inside the file (PS3.5 7.1, 7.5, A.4).

Ingest reads some thirty top-level attributes of every arriving instance. pydicom builds an
element object for every element and converts every value it is asked for through several
layers, ~2 ms for a small MR; this walk costs a few hundredths of that. It covers the common
case only: a data set in Explicit or Implicit VR Little Endian (every compressed syntax included)
that lies in the bytes handed in, or whose last element is a defined-length one running to the
end of the file (native Pixel Data of a big instance). Anything else, and anything odd (a VR that
is not one, an item tag out of place, an element running past the end), is `Unsupported`: the
caller then reads the file with pydicom, which decides exactly as it always did.
"""

from __future__ import annotations

import struct
from collections.abc import Collection

from mapping.dicom.raw_header import Raw

_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH"}
    | {b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_VRS = _LONG_VRS | _SHORT_VRS
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_HEADER = struct.Struct("<HHL")  # tag (group, element) and, in implicit VR, the 4-byte length
_SHORT_LENGTH = struct.Struct("<H")
_LONG_LENGTH = struct.Struct("<L")
_MAX_DEPTH = 16  # nesting of undefined-length sequences and items followed before giving up


class Unsupported(Exception):
    """A data set this walk leaves to pydicom."""


Elements = dict[int, Raw]
"""Tag -> the VR written in the file (None in Implicit VR) and the value bytes."""


def scan(data: bytes, start: int, size: int, *, implicit: bool, wanted: Collection[int]) -> Elements:
    """The `wanted` top-level elements of the data set that starts at `start` in `data`, the first
    bytes of a file of `size` bytes (all of it, or a head of it)."""
    if implicit and start + 6 <= len(data) and data[start + 4 : start + 6] in _VRS:
        raise Unsupported("an Implicit VR data set that looks explicit")
    found: Elements = {}
    pos = start
    end = len(data)
    header = _HEADER.unpack_from
    while pos < end:
        # `_element`, inlined: this loop runs for every top-level element of every instance
        if pos + 8 > end:
            raise Unsupported("an element header runs past the bytes read")
        group, element, length = header(data, pos)
        tag = group << 16 | element
        vr: bytes | None = None
        if implicit or group == 0xFFFE:
            value = pos + 8
        else:
            vr = data[pos + 4 : pos + 6]
            if vr in _SHORT_VRS:
                length >>= 16  # the 4 bytes read as the length: the VR, then the 2-byte length
                value = pos + 8
            elif vr in _LONG_VRS and pos + 12 <= end:
                length = _LONG_LENGTH.unpack_from(data, pos + 8)[0]
                value = pos + 12
            else:
                raise Unsupported("not a value representation")
        if tag >> 16 == 0xFFFE:
            raise Unsupported("an item or delimiter among the data set's elements")
        if length == _UNDEFINED:
            after = _undefined(data, value, implicit or vr == b"UN", 0)
        else:
            after = value + length
            if after > end:  # a value past the bytes handed in: fine only as the file's last
                if after == size and len(data) < size and tag not in wanted:
                    return found
                raise Unsupported("an element runs past the bytes read")
        if tag in wanted:
            found[tag] = Raw(
                vr.decode("ascii") if vr is not None else None, data[value:after], length == _UNDEFINED
            )
        pos = after
    if end != size:
        raise Unsupported("the data set goes on past the bytes read")
    return found


def _element(data: bytes, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR or None, length, where the value starts) of the element at `pos`."""
    if pos + 8 > len(data):
        raise Unsupported("an element header runs past the bytes read")
    group, element, length = _HEADER.unpack_from(data, pos)
    tag = group << 16 | element
    if implicit or group == 0xFFFE:  # items and delimiters have no VR in any syntax
        return tag, None, length, pos + 8
    vr = data[pos + 4 : pos + 6]
    if vr in _SHORT_VRS:
        return tag, vr, _SHORT_LENGTH.unpack_from(data, pos + 6)[0], pos + 8
    if vr not in _LONG_VRS or pos + 12 > len(data):
        raise Unsupported("not a value representation")
    return tag, vr, _LONG_LENGTH.unpack_from(data, pos + 8)[0], pos + 12


def _undefined(data: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Past an undefined-length value (a sequence, or encapsulated pixel data: items until the
    sequence delimitation item) that starts at `pos`."""
    if depth > _MAX_DEPTH:
        raise Unsupported("sequences nested too deep")
    while True:
        tag, _, length, value = _element(data, pos, True)
        if tag == _SEQUENCE_END:
            return value
        if tag != _ITEM:
            raise Unsupported("not an item")
        if length != _UNDEFINED:
            pos = value + length
            if pos > len(data):
                raise Unsupported("an item runs past the bytes read")
            continue
        pos = _item(data, value, implicit, depth + 1)


def _item(data: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Past the elements of an undefined-length item and its item delimitation item."""
    while True:
        tag, vr, length, value = _element(data, pos, implicit)
        if tag == _ITEM_END:
            return value
        if tag >> 16 == 0xFFFE:
            raise Unsupported("an item or delimiter among an item's elements")
        if length == _UNDEFINED:
            pos = _undefined(data, value, implicit or vr == b"UN", depth)
        else:
            pos = value + length
            if pos > len(data):
                raise Unsupported("an element runs past the bytes read")
