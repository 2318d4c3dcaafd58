"""Reading a received Part 10 file without loading its bulk data (PS3.10 7.1).

`read_part10` reads the file meta and the attributes the index needs (`facts.HEADER_KEYWORDS`),
and refuses files that end before their last element does (truncated transfers). The common case
is walked by `element_scan` in the bytes already read (the whole file up to 1 MiB, else its first
MiB and a last element running to the end); every other file is parsed by pydicom, which defers
values over 64 KiB, so a 500 MB multi-frame instance costs kilobytes of memory either way.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from mapping.dicom.facts import HEADER_KEYWORDS, Header
from mapping.dicom.part10 import FileMeta, peek_file_meta
from mapping.dicom.raw_header import RawHeader
from storage.element_scan import Unsupported, scan
from storage.errors import Invalid

_DEFER = 64 * 1024
_HEAD = 1 << 20
_READ_BUFFER = 1 << 13


@dataclass(frozen=True)
class Part10:
    header: Header  # the top-level elements of HEADER_KEYWORDS (or the whole data set, bulk deferred)
    meta: FileMeta  # where the data set starts (after the file meta group), the meta's UIDs
    size: int
    sha256: str  # of the data set bytes only: the same instance with another file meta is a duplicate


def read_part10(path: Path, *, walk: bool = True) -> Part10:
    """Parse and fingerprint a Part 10 file; `Invalid` (PHI-free reason) when it is not one.
    `walk=False`: with pydicom whatever the file (what the walk must agree with, for tests)."""
    size = path.stat().st_size
    try:
        with path.open("rb", buffering=_READ_BUFFER) as f:  # given: Python would ask for a tty
            head = f.read(min(size, _HEAD))
            meta = peek_file_meta(head)
            header = _walked(head, meta, size) if walk else None
            if header is not None:
                digest = _sha256(path, meta.dataset_offset, head if len(head) == size else None)
                return Part10(header, meta, size, digest)
            f.seek(0)
            ds = dcmread(f, defer_size=_DEFER, force=False)
            if not ds.file_meta.get("TransferSyntaxUID", UID("")).is_deflated:
                _check_complete(ds, size)  # a deflated data set is checked by zlib: it refuses a cut stream
    except InvalidDicomError as exc:
        raise Invalid("not a DICOM Part 10 file (no preamble, 'DICM' prefix or file meta)") from exc
    except (EOFError, zlib.error) as exc:
        raise Invalid("the DICOM file ends before its last element") from exc
    except (ValueError, KeyError, struct.error, NotImplementedError, AttributeError, TypeError) as exc:
        raise Invalid(f"the DICOM data set cannot be parsed ({type(exc).__name__})") from exc
    if "TransferSyntaxUID" not in ds.file_meta:
        raise Invalid("the file meta information has no Transfer Syntax UID")
    return Part10(ds, meta, size, _sha256(path, meta.dataset_offset, head if len(head) == size else None))


def _walked(head: bytes, meta: FileMeta, size: int) -> RawHeader | None:
    """The header found by `element_scan`, or None for pydicom to read: a transfer syntax that is
    not little endian, or deflated, or unknown; a data set the walk declines."""
    syntax = meta.transfer_syntax_uid or ""
    implicit = _walkable(syntax)
    if implicit is None:
        return None
    try:
        found = scan(head, meta.dataset_offset, size, implicit=implicit, wanted=_tags(HEADER_KEYWORDS))
        return RawHeader(HEADER_KEYWORDS, found, implicit=implicit, transfer_syntax=syntax)
    except (Unsupported, ValueError):
        return None


def walked_with_pixels(data: bytes, keywords: tuple[str, ...]) -> tuple[RawHeader, bytes] | None:
    """The top-level elements of `keywords` of the whole Part 10 file `data` and its Pixel Data
    value, found by `element_scan`, for a native (uncompressed) little endian data set; None
    for pydicom to read: any other syntax, no Pixel Data, a data set the walk declines."""
    try:
        meta = peek_file_meta(data)
    except InvalidDicomError:
        return None
    syntax = meta.transfer_syntax_uid or ""
    implicit = _walkable(syntax, native=True)
    if implicit is None:
        return None
    try:
        found = scan(
            data, meta.dataset_offset, len(data), implicit=implicit, wanted=_tags((*keywords, "PixelData"))
        )
        pixels = found.pop(_PIXEL_DATA, None)
        if pixels is None or pixels.undefined:
            return None
        return RawHeader(keywords, found, implicit=implicit, transfer_syntax=syntax), pixels.value
    except (Unsupported, ValueError):
        return None


_PIXEL_DATA = 0x7FE00010


def walks_natively(transfer_syntax_uid: str) -> bool:
    """Whether `walked_with_pixels` reads a data set in this syntax (native little endian)."""
    return _walkable(transfer_syntax_uid, native=True) is not None


@lru_cache(maxsize=8)
def _tags(keywords: tuple[str, ...]) -> frozenset[int]:
    return frozenset(int(tag) for tag in (tag_for_keyword(k) for k in keywords) if tag is not None)


@lru_cache(maxsize=64)
def _walkable(transfer_syntax_uid: str, *, native: bool = False) -> bool | None:
    """Whether a data set in this syntax is in implicit VR, for a syntax the walk reads (little
    endian, not deflated; `native`: not compressed either); None for any other, or an unknown one
    (pydicom says what it makes of it)."""
    try:
        syntax = UID(transfer_syntax_uid)
        if not syntax.is_little_endian or syntax.is_deflated or (native and syntax.is_compressed):
            return None
        return syntax.is_implicit_VR
    except ValueError:
        return None


def _check_complete(ds: Dataset, size: int) -> None:
    """pydicom neither notices a deferred value skipped past the end of file nor a value read short:
    every defined-length top-level element must end inside the file."""
    for tag in ds.keys():  # noqa: SIM118 - iterating the Dataset itself would convert every element
        raw = ds.get_item(tag, keep_deferred=True)  # a deferred read would load the value
        if (
            isinstance(raw, RawDataElement)
            and raw.length != 0xFFFFFFFF
            and raw.value_tell + raw.length > size
        ):
            raise EOFError("an element runs past the end of the file")


def _sha256(path: Path, offset: int, data: bytes | None = None) -> str:
    """Of the data set's bytes: from `data` (the whole file) when it was read, else from the file."""
    if data is not None:
        return hashlib.sha256(memoryview(data)[offset:]).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
