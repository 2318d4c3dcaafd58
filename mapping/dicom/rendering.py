"""A stored image's frame as a picture people look at (PS3.18 8.3.5 rendered media types, 9.1 WADO-URI):
the decoded frame through the grayscale or colour pipeline of PS3.3 C.11 to 8 bits a sample, scaled
to a viewport, encoded as JPEG or PNG.

- Grayscale: Modality LUT (Rescale Slope / Intercept, or a Modality LUT Sequence), then the VOI:
  an explicit window (`window=center,width,function`, WADO-URI windowCenter / windowWidth) wins;
  else the VOI LUT Sequence's first LUT; else the first Window Center / Width with the data set's
  VOI LUT Function; else the frame's own minimum and maximum. MONOCHROME1 is inverted afterwards,
  so that the picture shows what the modality meant (PS3.3 C.7.6.3.1.2).
- Colour: PALETTE COLOR through its palette (pydicom's `apply_color_lut`), YBR_FULL / YBR_FULL_422
  to RGB (pydicom's `convert_color_space`; a decoder that already gave RGB says so), RGB as is;
  samples of more than 8 bits are scaled down.
- `viewport=w,h` fits the picture inside w x h keeping its aspect ratio (PS3.18 8.3.5.1.3; a
  source region is not supported).

Pure: the caller reads the data set; decoding is pydicom's, with pylibjpeg, libjpeg and openjpeg.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, convert_color_space

from mapping.dicom.pixels import CannotDecode, GrayLayout, decoded_frame, number_of_frames
from mapping.dicom.raw_header import RawHeader

JPEG = "image/jpeg"
PNG = "image/png"
MEDIA_TYPES = (JPEG, PNG)
FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
MAX_SIDE = 8192  # of a viewport: a bigger one is refused, not allocated
THUMBNAIL = (128, 128)

__all__ = [
    "NATIVE_KEYWORDS",
    "CannotDecode",
    "Grayscale",
    "RenderOptions",
    "Window",
    "render",
    "render_native",
]


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2); function LINEAR, LINEAR_EXACT or SIGMOID."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = JPEG
    quality: int = 90  # JPEG only
    window: Window | None = None
    viewport: tuple[int | None, int | None] | None = None  # fit inside (columns, rows); None: any
    shrink_only: bool = False  # a thumbnail is never enlarged


def render(ds: Dataset, frame: int, options: RenderOptions) -> bytes:
    """Frame `frame` (1-based) of `ds` as `options.media_type`; CannotDecode when its pixel data
    cannot be decoded, IndexError when there is no such frame."""
    if not 1 <= frame <= number_of_frames(ds):
        raise IndexError(frame)
    array, photometric = decoded_frame(ds, frame, raw=True)
    return _encoded(_picture(ds, array, photometric, options.window), options)


def render_native(header: RawHeader, pixel_data: bytes, frame: int, options: RenderOptions) -> bytes | None:
    """What `render` gives of the data set whose elements of `NATIVE_KEYWORDS` are `header` and
    whose Pixel Data value is `pixel_data`, for the common case, without building a pydicom data
    set: uncompressed little endian MONOCHROME1 or MONOCHROME2 samples of 8 or 16 bits with no
    Modality or VOI LUT Sequence. None for any other data set (read it with pydicom: `render`);
    IndexError when there is no such frame."""
    if "ModalityLUTSequence" in header or "VOILUTSequence" in header:
        return None
    if str(header.get("PhotometricInterpretation", "")).strip() not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    layout = GrayLayout.of(header)
    if layout is None:
        return None
    try:
        frames = max(1, int(header.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        frames = 1
    if not 1 <= frame <= frames:
        raise IndexError(frame)
    array = layout.frame(pixel_data, frame)
    if array is None:
        return None
    return _encoded(eight_bit_grayscale(Grayscale.of(header), array, options.window), options)


NATIVE_KEYWORDS = (
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "NumberOfFrames",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "ModalityLUTSequence",
    "VOILUTSequence",
)
"""The elements `render_native` reads (and the two whose presence sends a data set to pydicom)."""


def _encoded(picture: NDArray[np.uint8], options: RenderOptions) -> bytes:
    image = Image.fromarray(picture, mode="L" if picture.ndim == 2 else "RGB")
    image = _fitted(image, options)
    out = io.BytesIO()
    if options.media_type == PNG:
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue()


@dataclass(frozen=True)
class Grayscale:
    """What the grayscale pipeline (PS3.3 C.11) takes from a header."""

    rescale: tuple[float, float] | None  # Rescale Slope and Intercept, when both are there
    window: Window | None  # the first Window Center / Width, with the VOI LUT Function
    voi_lut: tuple[int, int, NDArray[np.float64]] | None  # the VOI LUT Sequence's first LUT
    monochrome1: bool
    modality_lut: Dataset | None = None  # a data set with a Modality LUT Sequence (pydicom applies it)

    @classmethod
    def of(cls, header: Dataset | RawHeader) -> Grayscale:
        """A `RawHeader` is read for Rescale, window and photometric only: `render_native` gives
        one with a LUT Sequence to pydicom."""
        dataset = header if isinstance(header, Dataset) else None
        return cls(
            _rescale(header),
            _stored_window(header),
            _first_voi_lut(dataset) if dataset is not None else None,
            str(header.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1",
            dataset if dataset is not None and dataset.get("ModalityLUTSequence") else None,
        )


def eight_bit_grayscale(
    gray: Grayscale, frame: NDArray[np.generic], window: Window | None
) -> NDArray[np.uint8]:
    """A decoded grayscale frame through the Modality LUT, the VOI and MONOCHROME1's inversion.

    Each output pixel depends on its stored value alone, so integer frames with fewer distinct
    possible values than pixels (a 512 x 512 CT of 12 bits) go through a table: the pipeline is
    computed once for every value between the frame's minimum and maximum and looked up per
    pixel, the same bytes as computing it per pixel, several times faster."""
    if frame.dtype.kind in "iu" and frame.dtype.isnative and frame.size > _TABLE_MIN_PIXELS:
        low, high = int(frame.min()), int(frame.max())
        if high - low < min(frame.size, _TABLE_MAX):
            # value - low in the frame's own width, wrapping; read unsigned, that is the offset
            offsets: NDArray[np.unsignedinteger[Any]]
            if low == 0 and frame.dtype.kind == "u":
                offsets = cast("NDArray[np.unsignedinteger[Any]]", frame)  # the values are the offsets
            else:
                offsets = np.subtract(frame, frame.dtype.type(low)).view(f"u{frame.dtype.itemsize}")
            domain = np.arange(low, high + 1, dtype=frame.dtype)
            present = None
            if window is None and gray.voi_lut is None and gray.window is None:
                present = np.zeros(domain.size, dtype=bool)  # the min/max window: values that occur
                present[offsets] = True
            table = _eight_bits(gray, domain, window, present)
            looked_up: NDArray[np.uint8] = np.take(table, offsets)
            return looked_up
    return _eight_bits(gray, frame, window, None)


_TABLE_MIN_PIXELS = 4096
_TABLE_MAX = 1 << 16


def _eight_bits(
    gray: Grayscale, frame: NDArray[np.generic], window: Window | None, present: NDArray[np.bool_] | None
) -> NDArray[np.uint8]:
    """The pipeline on each element of `frame`; the min/max window (when no other applies) over
    the elements `present` marks (all when None)."""
    values = _modality(gray, frame)
    voi_lut = gray.voi_lut if window is None else None
    if voi_lut is not None:
        out = _through_lut(values, *voi_lut)
    else:
        occurring = values if present is None else values[present]
        window = window or gray.window or _min_max_window(occurring)
        out = windowed(values, window)
    if gray.monochrome1:
        out = 255.0 - out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _modality(gray: Grayscale, frame: NDArray[np.generic]) -> NDArray[np.float64]:
    """The Modality LUT (PS3.3 C.11.1), as pydicom's `apply_modality_lut` computes it."""
    if gray.modality_lut is not None:
        return np.asarray(apply_modality_lut(frame, gray.modality_lut), dtype=np.float64)
    values = frame.astype(np.float64)
    if gray.rescale is not None:
        slope, intercept = gray.rescale
        values *= slope
        values += intercept
    return values


def _rescale(header: Dataset | RawHeader) -> tuple[float, float] | None:
    slope, intercept = header.get("RescaleSlope"), header.get("RescaleIntercept")
    if slope is None or intercept is None:
        return None
    try:
        return float(slope), float(intercept)
    except (TypeError, ValueError):
        return None


def windowed(values: NDArray[np.float64], window: Window) -> NDArray[np.float64]:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID), to 0..255."""
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    if window.function == "LINEAR_EXACT":
        return np.clip(((values - c) / w + 0.5) * 255.0, 0.0, 255.0)
    if w <= 1:  # LINEAR needs a width of at least 1: a threshold at the center
        return np.where(values > c - 0.5, 255.0, 0.0)
    return np.clip(((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0, 0.0, 255.0)


def _picture(
    ds: Dataset, array: NDArray[np.generic], photometric: str, window: Window | None
) -> NDArray[np.uint8]:
    if photometric == "PALETTE COLOR":
        colour: NDArray[np.generic] = apply_color_lut(array, ds)
        return _to_eight_bits(colour, 8 * colour.dtype.itemsize)
    if array.ndim == 2:
        return eight_bit_grayscale(Grayscale.of(ds), array, window)
    if photometric in ("YBR_FULL", "YBR_FULL_422"):  # decoded: no longer subsampled
        array = np.asarray(convert_color_space(array, "YBR_FULL", "RGB"))
    return _to_eight_bits(array, int(ds.get("BitsStored") or 8))


def _to_eight_bits(array: NDArray[np.generic], bits: int) -> NDArray[np.uint8]:
    if bits <= 8 and array.dtype == np.uint8:
        return array.astype(np.uint8)
    scaled = np.asarray(array, dtype=np.float64) * 255.0 / (2**bits - 1)
    out: NDArray[np.uint8] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def _first_voi_lut(ds: Dataset) -> tuple[int, int, NDArray[np.float64]] | None:
    """(first input value, bits of an entry, entries) of the VOI LUT Sequence's first item."""
    items = ds.get("VOILUTSequence")
    if not items:
        return None
    item = items[0]
    descriptor = [int(v) for v in item.LUTDescriptor]
    bits = descriptor[2] if descriptor[2] in range(8, 17) else 16
    raw = item.LUTData
    if isinstance(raw, bytes):  # OW read as bytes
        dtype = "<u2" if ds.is_little_endian or ds.is_little_endian is None else ">u2"
        entries = np.frombuffer(raw, dtype=dtype).astype(np.float64)
    else:
        values = list(raw) if isinstance(raw, Sequence) else [raw]  # US: a MultiValue, or one number
        entries = np.asarray(values, dtype=np.float64)
    if entries.size == 0:
        return None
    return descriptor[1], bits, entries


def _through_lut(
    values: NDArray[np.float64], first: int, bits: int, entries: NDArray[np.float64]
) -> NDArray[np.float64]:
    index = np.clip(np.rint(values) - first, 0, entries.size - 1).astype(np.intp)
    out: NDArray[np.float64] = entries[index] * 255.0 / (2**bits - 1)
    return out


def _stored_window(ds: Dataset | RawHeader) -> Window | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    c = _first(center)
    w = _first(width)
    if c is None or w is None or w <= 0:
        return None
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    return Window(c, w, function if function in FUNCTIONS.values() else "LINEAR")


def _first(value: object) -> float | None:
    if isinstance(value, list | tuple) or (hasattr(value, "__getitem__") and not isinstance(value, str)):
        try:
            value = value[0]
        except (IndexError, TypeError):
            return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _min_max_window(values: NDArray[np.float64]) -> Window:
    low, high = float(values.min()), float(values.max())
    return Window((low + high) / 2, max(high - low, 1e-9), "LINEAR_EXACT")


def _fitted(image: Image.Image, options: RenderOptions) -> Image.Image:
    if options.viewport is None:
        return image
    width, height = options.viewport
    scale = min(
        width / image.width if width else math.inf,
        height / image.height if height else math.inf,
    )
    if not math.isfinite(scale) or (options.shrink_only and scale >= 1):
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)
