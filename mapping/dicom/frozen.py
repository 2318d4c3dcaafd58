"""Data sets that are never changed once built, shared between responses, which keep their
encodings: a modality asks the same worklist query again and again through the day, and writing
an item with pydicom costs more than finding it."""

from __future__ import annotations

import zlib
from io import BytesIO

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from mapping.dicom import element_writer


def encode(ds: Dataset, syntax: UID) -> bytes:
    """`ds` as a DIMSE message's data set in the transfer syntax `syntax` (PS3.5 7, A.5: deflated
    without a zlib header, padded to an even length), as pynetdicom's `dsutils.encode`; Little
    Endian by `element_writer`."""
    if syntax.is_little_endian:
        data = element_writer.write(ds, implicit_vr=syntax.is_implicit_VR)
    else:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = syntax.is_implicit_VR, False
        write_dataset(fp, ds)
        data = bytes(fp.getvalue())
    if syntax.is_deflated:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = compressor.compress(data) + compressor.flush()
        data += b"\0" * (len(data) % 2)
    return data


def decode(data: bytes, syntax: UID) -> Dataset:
    """A DIMSE message's data set (an identifier) in the transfer syntax `syntax`: the inverse
    of `encode`."""
    if syntax.is_deflated:
        data = zlib.decompress(data, -zlib.MAX_WBITS)
    return read_dataset(BytesIO(data), syntax.is_implicit_VR, syntax.is_little_endian)


class FrozenDataset(Dataset):
    """A data set nobody changes once built; `encoded` writes it once per transfer syntax."""

    def encoded(self, syntax: UID) -> bytes:
        known: dict[str, bytes] = self.__dict__.setdefault("_frozen_encodings", {})
        data = known.get(syntax)
        if data is None:  # two threads may both write it: the same bytes, and one is kept
            data = known[syntax] = encode(self, syntax)
        return data


def encoded(ds: Dataset, syntax: UID) -> bytes:
    """`ds` encoded in `syntax`, from what it remembers when it is a `FrozenDataset`."""
    return ds.encoded(syntax) if isinstance(ds, FrozenDataset) else encode(ds, syntax)
