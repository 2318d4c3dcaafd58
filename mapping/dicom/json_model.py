"""A data set in the DICOM JSON Model (PS3.18 Annex F), as WADO-RS metadata gives it (F.2).

The bulk values of the top level (binary VRs: pixel data, overlays, waveforms, private blobs)
become a BulkDataURI (F.2.6) that the caller names, and are never read: the data set comes from
`dcmread(..., defer_size=..., stop_before_pixels=True)`, so a deferred value stays on disk and
the pixel data (encapsulated pixel data has no length to defer by) is not parsed at all; the
caller names the pixel data element it stopped at (`pixel_data_tag` reads its tag). Everything else, nested
sequences included, is inline (F.2.7 InlineBinary for small binary values). Person names are
Alphabetic / Ideographic / Phonetic objects (F.2.2), as pydicom writes them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.tag import BaseTag
from pydicom.uid import UID

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW"})
BULK_THRESHOLD = 1024  # bytes: a binary value above this is bulk data


PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # Float, Double Float, Pixel Data
_PIXEL_VR = {0x7FE00008: "OF", 0x7FE00009: "OD", 0x7FE00010: "OB or OW"}


def pixel_data_tag(head: bytes, *, little_endian: bool) -> BaseTag | None:
    """The pixel data element whose header starts `head` (where `dcmread(stop_before_pixels=True)`
    left the file), or None when the data set ended there."""
    if len(head) < 4:
        return None
    group, element = struct.unpack("<HH" if little_endian else ">HH", head[:4])
    tag = BaseTag(group << 16 | element)
    return tag if tag in PIXEL_DATA_TAGS else None


UNDEFINED_LENGTH = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def element_header(head: bytes, *, implicit_vr: bool, little_endian: bool) -> tuple[int, int]:
    """(header length, value length) of the element whose header starts `head` (12 bytes are
    enough; PS3.5 7.1.1-7.1.3)."""
    order = "<" if little_endian else ">"
    if implicit_vr:
        return 8, int(struct.unpack(order + "L", head[4:8])[0])
    if head[4:6] in _LONG_VRS:
        return 12, int(struct.unpack(order + "L", head[8:12])[0])
    return 8, int(struct.unpack(order + "H", head[6:8])[0])


def dicom_json(
    ds: Dataset,
    bulk_data_uri: Callable[[BaseTag], str],
    transfer_syntax: str,
    *,
    pixel_data: BaseTag | None = None,
) -> dict[str, Any]:
    """The JSON object of `ds` (group 0002 left out but for the Transfer Syntax UID, which tells
    a client how the bulk data is encoded); `pixel_data` is the pixel data element the read
    stopped before, given as bulk data."""
    inline = Dataset()
    bulk: dict[str, dict[str, Any]] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating the Dataset itself would convert every element
        raw = ds.get_item(tag, keep_deferred=True)
        vr = vr_of(raw.VR, tag)
        length = raw.length if hasattr(raw, "length") else None
        if vr in BULK_VRS and _is_bulk(raw, length):
            bulk[f"{tag:08X}"] = {"vr": _json_vr(vr), "BulkDataURI": bulk_data_uri(tag)}
        else:
            inline.add(ds[tag])
    if pixel_data is not None:
        vr = _PIXEL_VR[pixel_data]
        if vr == "OB or OW":  # OB when encapsulated, else OW (PS3.5 A.4, 8.2)
            vr = "OB" if UID(transfer_syntax).is_compressed else "OW"
        bulk[f"{pixel_data:08X}"] = {"vr": vr, "BulkDataURI": bulk_data_uri(pixel_data)}
    body: dict[str, Any] = inline.to_json_dict(bulk_data_threshold=BULK_THRESHOLD)
    body.update(bulk)
    body["00020010"] = {"vr": "UI", "Value": [transfer_syntax]}
    return dict(sorted(body.items()))


def _is_bulk(raw: Any, length: int | None) -> bool:
    value = raw.value
    if value is None:
        return True  # deferred: over the reader's defer size
    if length is not None:
        return bool(length == 0xFFFFFFFF or length > BULK_THRESHOLD)
    return isinstance(value, bytes | bytearray) and len(value) > BULK_THRESHOLD


def vr_of(vr: str | None, tag: int) -> str:
    """The element's VR: as read, else (Implicit VR) the dictionary's; a private element read in
    Implicit VR is UN."""
    if vr:
        return vr
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"  # a private element read in Implicit VR


def _json_vr(vr: str) -> str:
    """An ambiguous dictionary VR ("OB or OW", pixel data in Implicit VR) as one VR: OW (PS3.5 8.2)."""
    return "OW" if " or " in vr else vr
