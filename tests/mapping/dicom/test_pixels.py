"""Uncompressed little endian grayscale frames read straight from the Pixel Data (`decoded_frame`'s
own path) are the arrays pydicom's native decoder gives: 8 and 16 bits, signed and unsigned,
unused high bits set to junk, several frames; other layouts still go to pydicom."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from mapping.dicom.pixels import _native_grayscale, decoded_frame

RNG = np.random.default_rng(11)


def pydicoms(ds: Dataset, frame: int) -> np.ndarray:
    array, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, index=frame - 1, raw=True)
    return array


def image(
    allocated: int,
    stored: int,
    signed: int,
    frames: int = 1,
    *,
    syntax: str = ExplicitVRLittleEndian,
    junk: bool = True,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 7, 5, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (
        allocated,
        stored,
        stored - 1,
        signed,
    )
    if frames > 1:
        ds.NumberOfFrames = frames
    raw = RNG.integers(0, 256, size=7 * 5 * frames * allocated // 8, dtype=np.uint8)  # junk high bits too
    if not junk:  # the high bits clear, or copies of the sign bit
        low, high = (-(1 << (stored - 1)), 1 << (stored - 1)) if signed else (0, 1 << stored)
        raw = RNG.integers(low, high, size=7 * 5 * frames, dtype=f"<{'i' if signed else 'u'}{allocated // 8}")
    ds.PixelData = raw.tobytes()
    return ds


@pytest.mark.parametrize("allocated, stored", [(8, 8), (8, 6), (16, 16), (16, 12), (16, 1)])
@pytest.mark.parametrize("signed", [0, 1])
@pytest.mark.parametrize("junk", [True, False], ids=["junk high bits", "clean high bits"])
def test_native_frames_are_pydicoms_arrays(allocated: int, stored: int, signed: int, junk: bool) -> None:
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ds = image(allocated, stored, signed, frames=3, syntax=syntax, junk=junk)
        for frame in (1, 2, 3):
            ours = _native_grayscale(ds, frame)
            assert ours is not None
            theirs = pydicoms(ds, frame)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            assert np.array_equal(ours, theirs)
            array, photometric = decoded_frame(ds, frame, raw=True)
            assert np.array_equal(array, theirs) and photometric == "MONOCHROME2"


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_padded.dcm",
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
        "JPEG2000.dcm",
    ],
)
def test_pydicoms_example_files(name: str) -> None:
    ds = dcmread(get_testdata_file(name, download=False) or "")
    frames = int(ds.get("NumberOfFrames") or 1)
    for frame in range(1, frames + 1):
        assert np.array_equal(decoded_frame(ds, frame, raw=True)[0], pydicoms(ds, frame))


def test_other_layouts_go_to_pydicom() -> None:
    assert _native_grayscale(image(16, 12, 0, syntax=ExplicitVRBigEndian), 1) is None
    assert _native_grayscale(image(32, 32, 0), 1) is None
    colour = image(8, 8, 0)
    colour.SamplesPerPixel = 3
    assert _native_grayscale(colour, 1) is None
    short = image(16, 12, 0)
    short.PixelData = short.PixelData[:-2]
    assert _native_grayscale(short, 1) is None


@pytest.mark.parametrize(
    "signed, samples",
    [(0, [0, 4095, 4096]), (1, [-2048, 2047, 2048]), (1, [-2049, -2048, 2047])],
    ids=["unsigned", "signed, above", "signed, below"],
)
def test_the_first_value_past_the_stored_bits_is_corrected(signed: int, samples: list[int]) -> None:
    ds = image(16, 12, signed)
    dtype = f"<{'i' if signed else 'u'}2"
    ds.PixelData = np.resize(np.asarray(samples, dtype="<i4"), 7 * 5).astype(dtype).tobytes()
    ours = _native_grayscale(ds, 1)
    assert ours is not None and np.array_equal(ours, pydicoms(ds, 1))
