"""A stored image's frames, decoded (PS3.5 8, PS3.18 10.4.1.1.2 frame retrieval): the pixel array
of one frame, or its uncompressed bytes in little endian, or its bit stream as stored.

Decoding is pydicom's (its native and RLE decoders, pylibjpeg with libjpeg and openjpeg); any
failure of a decoder on a bit stream, whatever its type, is `CannotDecode`, so that a caller
refuses the request instead of failing. Pure: the caller reads the data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pack_bits

from mapping.dicom.raw_header import RawHeader


class CannotDecode(Exception):
    """The instance has no pixel data, or no decoder can read its bit stream (PHI-free text)."""


def number_of_frames(ds: Dataset) -> int:
    """Frames of the image (Number of Frames, 1 when absent); 0 when it has no pixel data."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return 0
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def decoded_frame(ds: Dataset, frame: int, *, raw: bool) -> tuple[NDArray[np.generic], str]:
    """Frame `frame` (1-based) as an array (rows x columns, x samples for colour) and the
    photometric interpretation its values are in (a JPEG decoder may have turned YBR into RGB);
    `raw`: no colour conversion by pydicom."""
    if number_of_frames(ds) == 0:
        raise CannotDecode("the instance has no pixel data")
    native = _native_grayscale(ds, frame)
    if native is not None:
        return native, str(ds.get("PhotometricInterpretation", "")).strip()
    ts = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise CannotDecode("no decoder for the stored transfer syntax") from exc
    if not decoder.is_available:
        raise CannotDecode("no decoder for the stored transfer syntax")
    try:
        array, meta = decoder.as_array(ds, index=frame - 1, raw=raw)
    except Exception as exc:  # a decoder's failure on this bit stream, whatever its type
        raise CannotDecode(f"the pixel data cannot be decoded ({type(exc).__name__})") from exc
    photometric = str(meta.get("photometric_interpretation") or ds.get("PhotometricInterpretation", ""))
    return array, photometric.strip()


def _native_grayscale(ds: Dataset, frame: int) -> NDArray[np.generic] | None:
    """Frame `frame` of uncompressed little endian grayscale samples (`GrayLayout`), read straight
    from the Pixel Data's bytes; None for any other layout (pydicom decodes those)."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts.is_compressed or not ts.is_little_endian or "PixelData" not in ds:
        return None
    layout = GrayLayout.of(ds)
    data = ds.PixelData
    if layout is None or not isinstance(data, bytes):
        return None
    return layout.frame(data, frame)


@dataclass(frozen=True)
class GrayLayout:
    """Uncompressed little endian grayscale samples of 8 or 16 bits (PS3.5 8.1.1, PS3.3 C.7.6.3)."""

    rows: int
    columns: int
    allocated: int
    stored: int
    signed: bool

    @classmethod
    def of(cls, header: Dataset | RawHeader) -> GrayLayout | None:
        """The layout `header` describes; None when it is another (colour, 1 or 32 bits, odd)."""
        try:
            rows, columns = int(header.get("Rows")), int(header.get("Columns"))
            allocated, stored = int(header.get("BitsAllocated")), int(header.get("BitsStored"))
            signed, samples = int(header.get("PixelRepresentation")), int(header.get("SamplesPerPixel") or 1)
        except (TypeError, ValueError):
            return None
        if (
            samples != 1
            or allocated not in (8, 16)
            or not 1 <= stored <= allocated
            or signed not in (0, 1)
            or rows < 1
            or columns < 1
        ):
            return None
        return cls(rows, columns, allocated, stored, bool(signed))

    def frame(self, data: bytes, frame: int) -> NDArray[np.generic] | None:
        """Frame `frame` (1-based) of the Pixel Data value `data`: the array pydicom's native
        decoder gives (its `_correct_unused_bits`: masked when unsigned, sign-extended when
        signed), a fifth of its time on a 512 x 512 frame. No copy, unless unused high bits hold
        something other than the value's (then two passes). None when `data` is too short."""
        size = self.rows * self.columns * self.allocated // 8
        if len(data) < frame * size:
            return None
        dtype = np.dtype(f"<{'i' if self.signed else 'u'}{self.allocated // 8}")
        array = np.frombuffer(data, dtype=dtype, count=self.rows * self.columns, offset=(frame - 1) * size)
        array = array.reshape(self.rows, self.columns)
        if self.stored == self.allocated or self._within_stored_bits(array):
            return array  # read-only (a view of the data set's bytes): nothing here writes to a frame
        shift = self.allocated - self.stored
        corrected: NDArray[np.generic] = np.left_shift(array, shift)
        np.right_shift(corrected, shift, out=corrected)
        return corrected

    def _within_stored_bits(self, array: NDArray[np.generic]) -> bool:
        """Whether every sample is already its value: the unused high bits clear (unsigned) or
        copies of the sign bit (signed), as most files write them. A pass or two that read,
        against two that write a new frame."""
        if self.signed:
            half = 1 << (self.stored - 1)
            return bool(-half <= array.min() and array.max() < half)
        return bool(array.max() < 1 << self.stored)


def uncompressed_frame(ds: Dataset, frame: int) -> bytes:
    """Frame `frame` (1-based) as the bytes it would have in Explicit VR Little Endian (what the
    instance decoded by a WADO-RS retrieve in that syntax holds): samples little endian, 1-bit
    pixels packed; native little endian frames are the stored bytes (YBR_FULL_422 subsampled)."""
    ts = ds.file_meta.TransferSyntaxUID
    bits = int(ds.get("BitsAllocated") or 8)
    if not ts.is_compressed and ts.is_little_endian and bits % 8 == 0 and "PixelData" in ds:
        rows, columns = int(ds.Rows), int(ds.Columns)
        if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
            length = rows * columns * 2 * bits // 8
        else:
            length = rows * columns * int(ds.get("SamplesPerPixel") or 1) * bits // 8
        data = ds.PixelData[(frame - 1) * length : frame * length]
        if len(data) == length:
            return bytes(data)
    array, _ = decoded_frame(ds, frame, raw=not ts.is_compressed)
    if bits == 1:
        return bytes(pack_bits(array))
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return little.tobytes()


def stored_frame(ds: Dataset, frame: int) -> bytes:
    """Frame `frame` (1-based) of encapsulated pixel data, its bit stream as stored."""
    try:
        return bytes(get_frame(ds.PixelData, frame - 1, number_of_frames=number_of_frames(ds)))
    except Exception as exc:  # a broken encapsulation, whatever its type
        raise CannotDecode(f"the frame cannot be read ({type(exc).__name__})") from exc
