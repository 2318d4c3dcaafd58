"""DICOM Unique Identifiers (PS3.5 9.1)."""

from __future__ import annotations

import re

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def valid_uid(uid: str) -> bool:
    """PS3.5 9.1: digits and dots, at most 64 characters (leading zeros tolerated)."""
    return len(uid) <= 64 and _UID.match(uid) is not None


def is_oid(text: str) -> bool:
    """An ISO OID as FHIR's `oid` and `urn:oid:` take it: no leading zeros in a component."""
    return _OID.match(text) is not None
