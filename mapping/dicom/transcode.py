"""Changing an instance's transfer syntax for a retrieve (PS3.5 10, 8.2, A.4; PS3.18 8.7.3.5):
the one place that says whether, and how, an instance stored in one transfer syntax is sent in
another, for every door that sends instances (WADO-RS and its frames, WADO-URI, C-GET on both
association paths, C-MOVE).

- As stored (`Way.AS_STORED`): the same syntax, the stored bytes.
- Decoded (`Way.DECODE`): into an uncompressed little endian syntax (Explicit or Implicit VR
  Little Endian, Deflated Explicit VR Little Endian): from a compressed one by decoding the pixel
  data (pydicom with pylibjpeg, libjpeg, openjpeg, pyjpegls), from the other uncompressed ones by
  re-encoding.
- Encoded (`Way.ENCODE`): into a lossless compressed syntax pydicom encodes (`LOSSLESS`: RLE
  Lossless, JPEG-LS Lossless, JPEG 2000 Lossless), decoding first what is stored compressed.
  Lossless, so the same instance: its SOP Instance UID kept, Lossy Image Compression (0028,2110)
  untouched (already 01 where a lossy stored syntax was decoded).
- Never into a lossy syntax other than the stored one: lossy compression makes a new instance
  (PS3.3 C.7.6.1.1.5) and is not something a retrieve does behind the caller's back.

Whether a decoder or an encoder exists says whether to try (`way`); the header says whether the
encoder will take the pixel data (`unencodable`: no pixel data, a layout outside the syntax's
profile of PS3.5 8.2, an image openjpeg will not take); a bit stream that still fails (a decoder
that cannot read it, JPEG-LS whose output outgrows its buffer on a tiny image) is
`CannotTranscode` when tried. Pure: the caller reads the data set and writes the bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import Enum

import numpy as np
from pydicom import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import ENCODING_PROFILES, get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

EXPLICIT_VR_LE = str(ExplicitVRLittleEndian)
# what an instance is decoded into; big endian (retired) only as stored
DECODED = frozenset(
    str(uid) for uid in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
)
LOSSLESS = (str(RLELossless), str(JPEGLSLossless), str(JPEG2000Lossless))  # what we encode into
_OPENJPEG_SMALLEST = 32  # its default 6 resolution levels need 2**5 pixels a side


class CannotTranscode(Exception):
    """The instance cannot be given in the asked transfer syntax (no decoder or encoder, pixel
    data the encoder refuses, undecodable data); the text is PHI-free."""


class Way(Enum):
    AS_STORED = "as stored"
    DECODE = "decoded"
    ENCODE = "encoded"


def way(stored: str, target: str) -> Way | None:
    """How an instance stored in `stored` is given in `target`, judged by the transfer syntaxes
    alone; None when it cannot be (no decoder for `stored`, `target` lossy, big endian, not a
    transfer syntax, or one we have no encoder for)."""
    if stored == target:
        return Way.AS_STORED
    source = UID(stored)
    if not source.is_transfer_syntax or not UID(target).is_transfer_syntax:
        return None
    if source.is_compressed and not decodable(stored):
        return None
    if target in DECODED:
        return Way.DECODE
    if can_compress(target):
        return Way.ENCODE
    return None


def can_transcode(stored: str, target: str) -> bool:
    """Whether a DICOMweb retrieve (WADO-RS, WADO-URI) can give an instance stored in `stored` in
    `target`: as stored, decoded into Explicit VR Little Endian (the uncompressed syntax of
    DICOMweb, PS3.18 8.7.3.5.2), or encoded into a lossless syntax of `LOSSLESS`."""
    how = way(stored, target)
    return how is not None and (how is not Way.DECODE or target == EXPLICIT_VR_LE)


def decodable(stored: str) -> bool:
    """Whether the pixel data of `stored` (a compressed syntax) has an installed decoder."""
    try:
        return bool(get_decoder(UID(stored)).is_available)
    except NotImplementedError:
        return False  # a compressed syntax pydicom has no decoder for (video, for one)


def can_compress(target: str) -> bool:
    """Whether uncompressed pixel data can be encoded into `target`: a lossless syntax whose
    encoder is installed."""
    if target not in LOSSLESS:
        return False
    try:
        return bool(get_encoder(UID(target)).is_available)
    except NotImplementedError:
        return False


@dataclass(frozen=True)
class PixelHeader:
    """What an encoder's acceptance depends on, from an instance's header (PS3.3 C.7.6.3)."""

    has_pixel_data: bool  # (7FE0,0010): float and double float pixel data have no encoder
    photometric: str
    samples: int
    representation: int
    bits_allocated: int
    bits_stored: int
    rows: int
    columns: int

    @classmethod
    def of(cls, header: Dataset, *, has_pixel_data: bool) -> PixelHeader:
        def number(keyword: str) -> int:
            try:
                return int(header.get(keyword) or 0)
            except (TypeError, ValueError):
                return 0

        return cls(
            has_pixel_data,
            str(header.get("PhotometricInterpretation", "")).strip(),
            number("SamplesPerPixel"),
            number("PixelRepresentation"),
            number("BitsAllocated"),
            number("BitsStored"),
            number("Rows"),
            number("Columns"),
        )


def unencodable(header: PixelHeader, stored: str, target: str) -> str | None:
    """Why the pixel data `header` describes cannot be encoded into the lossless `target`, as far
    as the header tells (PS3.5 8.2's profile of the syntax, openjpeg's smallest image); None
    when the encoder is expected to take it."""
    if not header.has_pixel_data:
        return "the instance has no pixel data to compress"
    photometric = header.photometric
    if UID(stored).is_compressed and photometric.startswith("YBR"):
        photometric = "RGB"  # pydicom's decoders give colour as RGB
    profiles = ENCODING_PROFILES.get(UID(target), [])
    fits = any(
        photometric == pi
        and header.samples == samples
        and header.representation in representations
        and header.bits_allocated in allocated
        and header.bits_stored in stored_bits
        for pi, samples, representations, allocated, stored_bits in profiles
    )
    if profiles and not fits:
        return "the pixel data's layout is outside what the transfer syntax encodes (PS3.5 8.2)"
    if target == JPEG2000Lossless and min(header.rows, header.columns) < _OPENJPEG_SMALLEST:
        return f"openjpeg encodes images of at least {_OPENJPEG_SMALLEST} pixels a side"
    return None


def converted(ds: Dataset, target: str) -> None:
    """`ds` (read whole, with its file meta) into `target`, in place: its pixel data decoded
    and, for a lossless compressed target, encoded; the SOP Instance UID kept (the same
    instance, another encoding: PS3.5 10). CannotTranscode when it cannot be."""
    stored = str(ds.file_meta.TransferSyntaxUID)
    how = way(stored, target)
    if how is None:
        raise CannotTranscode("the instance cannot be given in the transfer syntax asked")
    if how is Way.AS_STORED:
        return
    if how is Way.ENCODE:
        _check_encodable(ds, target)
    source = UID(stored)
    try:
        if source.is_compressed:
            ds.decompress(generate_instance_uid=False)  # sets Explicit VR Little Endian
    except Exception as exc:  # a decoder's failure on this bit stream, whatever its type
        raise CannotTranscode(f"the pixel data cannot be decoded ({type(exc).__name__})") from exc
    if not source.is_little_endian:
        _swap_to_little_endian(ds)
    if how is Way.ENCODE:
        _compress(ds, target)
    else:
        ds.file_meta.TransferSyntaxUID = UID(target)


def transcode(ds: Dataset, target: str) -> bytes:
    """The Part 10 bytes of `ds` (read whole, with its file meta) in `target` (`converted`)."""
    converted(ds, target)
    out = io.BytesIO()
    try:
        dcmwrite(out, ds, enforce_file_format=True)
    except Exception as exc:  # a value that cannot be written in the new encoding
        raise CannotTranscode(f"the instance cannot be written ({type(exc).__name__})") from exc
    return out.getvalue()


def encoded_frames(ds: Dataset, frames: list[int], target: str) -> list[bytes]:
    """Frames `frames` (1-based) of `ds`, each encoded into the lossless `target` on its own: the
    bit streams of PS3.18 8.7.3.5.3's image media types (image/jls, image/jp2, image/dicom-rle).
    CannotTranscode when they cannot be."""
    if way(str(ds.file_meta.TransferSyntaxUID), target) is not Way.ENCODE:
        raise CannotTranscode("the frames cannot be encoded into the transfer syntax asked")
    _check_encodable(ds, target)
    converted(ds, EXPLICIT_VR_LE)
    single = int(ds.get("NumberOfFrames") or 1) == 1
    encoder = get_encoder(UID(target))
    try:
        return [encoder.encode(ds, index=None if single else n - 1) for n in frames]
    except Exception as exc:  # an encoder's refusal of this pixel data, whatever its type
        raise CannotTranscode(f"the pixel data cannot be encoded ({type(exc).__name__})") from exc


def _check_encodable(ds: Dataset, target: str) -> None:
    header = PixelHeader.of(ds, has_pixel_data="PixelData" in ds)
    reason = unencodable(header, str(ds.file_meta.TransferSyntaxUID), target)
    if reason is not None:
        raise CannotTranscode(reason)


_WIDTHS = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}  # bytes per value of the binary VRs


def _swap_to_little_endian(ds: Dataset) -> None:
    """A big endian data set's binary values (pixel data, overlays, ...) swapped to little
    endian, which pydicom's writer does not do (its numbers it writes in either), and its file
    meta saying Explicit VR Little Endian from then on (so pixel data is read so)."""
    for elem in ds.iterall():
        width = _WIDTHS.get(str(elem.VR))
        value = elem.value
        if width and isinstance(value, bytes) and len(value) % width == 0:
            elem.value = np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _compress(ds: Dataset, target: str) -> None:
    if "PixelData" not in ds:
        raise CannotTranscode("the instance has no pixel data to compress")
    try:
        if int(ds.get("SamplesPerPixel") or 1) > 1 and ds.get("PlanarConfiguration") == 1:
            # colour by plane: pydicom's RLE encoder reads its source pixel by pixel
            pixels = ds.pixel_array
            ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
            ds.PlanarConfiguration = 0
        ds.compress(UID(target), generate_instance_uid=False)
    except Exception as exc:  # an encoder's refusal of this pixel data, whatever its type
        raise CannotTranscode(f"the pixel data cannot be encoded ({type(exc).__name__})") from exc
