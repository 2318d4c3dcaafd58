"""The File Meta Information of a DICOM Part 10 file, peeked at from its first bytes (PS3.10 7.1).

Pure: the caller reads the bytes (the first megabyte is plenty) and hands them in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom.errors import InvalidDicomError

# Explicit VRs with a 4-byte length after two reserved bytes (PS3.5 7.1.2)
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


@dataclass(frozen=True)
class FileMeta:
    """The group 0002 elements of a Part 10 file that adapters look at before ingest."""

    dataset_offset: int  # first byte after the file meta group
    sop_class_uid: str | None  # (0002,0002)
    sop_instance_uid: str | None  # (0002,0003)
    transfer_syntax_uid: str | None  # (0002,0010)


def peek_file_meta(head: bytes) -> FileMeta:
    """Walk the (explicit VR little endian) file meta group in the first bytes of a Part 10 file;
    InvalidDicomError when there is no 'DICM' prefix or the group does not fit in `head`."""
    if len(head) < 132 or head[128:132] != b"DICM":
        raise InvalidDicomError("no DICM prefix")
    pos, found = 132, {}
    while pos + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, pos)
        if group != 0x0002:
            break
        vr = head[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(head):
                raise InvalidDicomError("file meta group cut short")
            length, start = struct.unpack_from("<L", head, pos + 8)[0], pos + 12
        else:
            length, start = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        if element in (0x0002, 0x0003, 0x0010):
            found[element] = head[start : start + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos = start + length
    else:
        if pos < len(head):
            raise InvalidDicomError("file meta group does not fit the first megabyte")
    return FileMeta(pos, found.get(0x0002), found.get(0x0003), found.get(0x0010))


def file_meta_header(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_uid: str,
    version: str,
) -> bytes:
    """Preamble, 'DICM' and the File Meta Information group (PS3.10 7.1) of a received data set,
    byte for byte what pydicom's `write_file_meta_info` writes for pynetdicom's `create_file_meta`
    (which C-STORE received files had before): the data set's bytes follow unchanged."""
    body = _meta_element(0x0001, b"OB", b"\x00\x01")
    body += _meta_element(0x0002, b"UI", _padded(sop_class_uid, b"\0"))
    body += _meta_element(0x0003, b"UI", _padded(sop_instance_uid, b"\0"))
    body += _meta_element(0x0010, b"UI", _padded(transfer_syntax_uid, b"\0"))
    body += _meta_element(0x0012, b"UI", _padded(implementation_uid, b"\0"))
    if version:
        body += _meta_element(0x0013, b"SH", _padded(version, b" "))
    group_length = _meta_element(0x0000, b"UL", struct.pack("<I", len(body)))
    return b"\0" * 128 + b"DICM" + group_length + body


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii", "replace")
    return raw + pad * (len(raw) % 2)
