"""DICOM AE titles (PS3.5 6.2, VR AE): 1 to 16 characters of the default character repertoire,
no backslash, no control characters; leading and trailing spaces are not significant."""

from __future__ import annotations


def ae_title_problem(value: str) -> str | None:
    """Why `value` is not an AE title, or None."""
    title = value.strip()
    if not 0 < len(title) <= 16:
        return "an AE title has 1 to 16 characters"
    if "\\" in title or not title.isascii() or not title.isprintable():
        return "an AE title has printable ASCII characters and no backslash"
    return None
