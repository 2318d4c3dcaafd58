"""DICOM Unique Identifiers (PS3.5 9.1)."""

from __future__ import annotations

import re

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def valid_uid(uid: str) -> bool:
    """PS3.5 9.1: digits and dots, at most 64 characters (leading zeros tolerated)."""
    return len(uid) <= 64 and _UID.match(uid) is not None
