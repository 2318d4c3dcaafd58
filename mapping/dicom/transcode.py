"""Changing an instance's transfer syntax for a retrieve (PS3.18 8.7.3.5, PS3.5 10).

To Explicit VR Little Endian (1.2.840.10008.1.2.1), the one transfer syntax every DICOM reader
understands; and, for a C-GET peer that accepted only those, to the lossless compressed ones
pydicom encodes (`compress`: RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless; never a lossy
one, which would make a new instance). To Explicit VR Little Endian: from a compressed one by
decoding the pixel data (pydicom with pylibjpeg, libjpeg, openjpeg), from Implicit VR, big endian
or a deflated data set by re-encoding. Whether a decoder exists says whether to try; a bit stream
it cannot decode (12-bit JPEG Extended, which none of the installed decoders reads) is
`CannotTranscode` when tried. Pure: the caller reads the data set and writes the bytes.
"""

from __future__ import annotations

import io

from pydicom import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

EXPLICIT_VR_LE = str(ExplicitVRLittleEndian)
TARGETS = frozenset({EXPLICIT_VR_LE})  # what a retrieve may ask for besides the stored syntax
LOSSLESS = frozenset(str(uid) for uid in (RLELossless, JPEGLSLossless, JPEG2000Lossless))


class CannotTranscode(Exception):
    """The instance cannot be given in the asked transfer syntax (no decoder, undecodable data)."""


def can_transcode(stored: str, target: str) -> bool:
    """Whether an instance stored in `stored` can be given in `target`, judged by the transfer
    syntaxes alone (a corrupt bit stream can still fail later, in `transcode`)."""
    if stored == target:
        return True
    if target not in TARGETS:
        return False
    uid = UID(stored)
    if not uid.is_transfer_syntax:
        return False
    if not uid.is_compressed:
        return True  # Implicit VR LE, Deflated, Explicit VR Big Endian (pydicom swaps the bytes)
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False  # a compressed syntax pydicom has no decoder for (video, for one)


def transcode(ds: Dataset, target: str) -> bytes:
    """The Part 10 bytes of `ds` (read whole, with its file meta) in `target`; the SOP Instance
    UID is kept: decoding changes the encoding, not the instance (PS3.5 10 and 8.2)."""
    if not can_transcode(ds.file_meta.TransferSyntaxUID, target):
        raise CannotTranscode("no decoder for the stored transfer syntax")
    try:
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress(generate_instance_uid=False)  # sets Explicit VR Little Endian
        else:
            ds.file_meta.TransferSyntaxUID = UID(target)
        out = io.BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
    except CannotTranscode:
        raise
    except Exception as exc:  # a decoder's failure on this bit stream, whatever its type
        raise CannotTranscode(f"the pixel data cannot be decoded ({type(exc).__name__})") from exc
    return out.getvalue()


def can_compress(target: str) -> bool:
    """Whether uncompressed pixel data can be encoded into `target`: a lossless syntax whose
    encoder is installed."""
    if target not in LOSSLESS:
        return False
    try:
        return bool(get_encoder(UID(target)).is_available)
    except NotImplementedError:
        return False


def compress(ds: Dataset, target: str) -> None:
    """Encode `ds`'s uncompressed pixel data into the lossless `target`, in place (the SOP
    Instance UID kept: lossless, the same instance); CannotTranscode when it cannot be (no pixel
    data, a layout the encoder refuses)."""
    if not can_compress(target) or "PixelData" not in ds:
        raise CannotTranscode("the instance cannot be encoded into the transfer syntax asked")
    try:
        ds.compress(UID(target), generate_instance_uid=False)
    except Exception as exc:  # an encoder's refusal of this pixel data, whatever its type
        raise CannotTranscode(f"the pixel data cannot be encoded ({type(exc).__name__})") from exc
