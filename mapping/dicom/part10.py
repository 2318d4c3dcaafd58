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
