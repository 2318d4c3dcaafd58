"""The grayscale pipeline's per-value table (`eight_bit_grayscale` on integer frames with more
pixels than possible values) gives the same bytes as the PS3.3 C.11 formulas applied to each
pixel, written out here in numpy: Modality LUT, each VOI function, the VOI LUT Sequence, the
min/max window of the values that occur, MONOCHROME1."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom import Dataset

from mapping.dicom.rendering import Grayscale, Window, eight_bit_grayscale

RNG = np.random.default_rng(7)


def dataset(**attributes: object) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 12
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def expected(values: NDArray[np.float64], window: Window, *, inverted: bool = False) -> NDArray[np.uint8]:
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif window.function == "LINEAR_EXACT":
        out = np.clip(((values - c) / w + 0.5) * 255.0, 0.0, 255.0)
    elif w <= 1:
        out = np.where(values > c - 0.5, 255.0, 0.0)
    else:
        out = np.clip(((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0, 0.0, 255.0)
    if inverted:
        out = 255.0 - out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


FRAMES = {
    "uint16 12 bits": RNG.integers(0, 4096, (256, 256)).astype(np.uint16),
    "int16 around zero": RNG.integers(-1024, 3072, (256, 256)).astype(np.int16),
    "uint8": RNG.integers(0, 256, (128, 128)).astype(np.uint8),
    "uint16 narrow": RNG.integers(1000, 1100, (200, 300)).astype(np.uint16),
    "int16 nearly every value": RNG.integers(-32768, 32767, (300, 300)).astype(np.int16),
    "uint32 far from zero": (RNG.integers(0, 200, (100, 100)) + 4_000_000_000).astype(np.uint32),
}
WINDOWS = [Window(40, 400), Window(40, 400, "LINEAR_EXACT"), Window(40, 400, "SIGMOID"), Window(100, 1)]


@pytest.mark.parametrize("name", FRAMES)
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_an_explicit_window_through_the_table_is_the_per_pixel_formula(name: str, window: Window) -> None:
    frame = FRAMES[name]
    ds = dataset(RescaleSlope=0.5, RescaleIntercept=-100)
    values = frame.astype(np.float64) * 0.5 - 100
    assert np.array_equal(eight_bit_grayscale(Grayscale.of(ds), frame, window), expected(values, window))


@pytest.mark.parametrize("name", FRAMES)
def test_the_stored_window_and_monochrome1(name: str) -> None:
    frame = FRAMES[name]
    ds = dataset(WindowCenter=[300, 50], WindowWidth=[800, 100], PhotometricInterpretation="MONOCHROME1")
    assert np.array_equal(
        eight_bit_grayscale(Grayscale.of(ds), frame, None),
        expected(frame.astype(np.float64), Window(300, 800), inverted=True),
    )


@pytest.mark.parametrize("name", FRAMES)
def test_the_min_max_window_is_of_the_values_that_occur(name: str) -> None:
    """Gaps between the minimum and maximum (values no pixel has) change nothing."""
    frame = FRAMES[name].copy()
    frame[frame.shape[0] // 2 :] = frame.min()  # half the picture one value
    ds = dataset(RescaleSlope=2, RescaleIntercept=-7)
    values = frame.astype(np.float64) * 2 - 7
    low, high = float(values.min()), float(values.max())
    window = Window((low + high) / 2, max(high - low, 1e-9), "LINEAR_EXACT")
    assert np.array_equal(eight_bit_grayscale(Grayscale.of(ds), frame, None), expected(values, window))


def test_the_voi_lut_sequence() -> None:
    frame = FRAMES["uint16 12 bits"]
    item = Dataset()
    item.LUTDescriptor = [2048, 1024, 12]
    entries = np.linspace(0, 4095, 2048).astype(np.uint16)
    item.LUTData = [int(v) for v in entries]
    ds = dataset(VOILUTSequence=[item])
    index = np.clip(frame.astype(np.int64) - 1024, 0, 2047)
    want = np.clip(np.rint(entries[index].astype(np.float64) * 255.0 / 4095), 0, 255).astype(np.uint8)
    assert np.array_equal(eight_bit_grayscale(Grayscale.of(ds), frame, None), want)


def test_a_small_frame_and_a_wide_one_take_the_per_pixel_path_with_the_same_result() -> None:
    window = Window(40, 400)
    small = FRAMES["int16 around zero"][:16, :16]
    wide = RNG.integers(-30000, 30000, (100, 100)).astype(np.int16)  # more values than pixels
    for frame in (small, wide):
        values = frame.astype(np.float64)
        assert np.array_equal(
            eight_bit_grayscale(Grayscale.of(dataset()), frame, window), expected(values, window)
        )
