"""Reading a received Part 10 file without loading its bulk data (PS3.10 7.1).

`read_part10` parses every element header but defers values over 64 KiB, so a
500 MB multi-frame instance costs kilobytes of memory; it also refuses files
that end before their last element does (truncated transfers).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from mapping.dicom.part10 import peek_file_meta
from storage.errors import Invalid

_DEFER = 64 * 1024


@dataclass(frozen=True)
class Part10:
    dataset: Dataset  # with file_meta; bulk values deferred
    dataset_offset: int  # where the data set starts (after the file meta group)
    size: int
    sha256: str  # of the data set bytes only: the same instance with another file meta is a duplicate


def read_part10(path: Path) -> Part10:
    """Parse and fingerprint a Part 10 file; `Invalid` (PHI-free reason) when it is not one."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            offset = peek_file_meta(f.read(min(size, 1 << 20))).dataset_offset
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
    return Part10(dataset=ds, dataset_offset=offset, size=size, sha256=_sha256(path, offset))


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


def _sha256(path: Path, offset: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
