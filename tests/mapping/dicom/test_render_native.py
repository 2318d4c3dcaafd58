"""`render_native` (a native grayscale frame rendered from the walked header, no pydicom data set)
gives the same bytes as `render` of the data set pydicom reads from the same file, and declines
(None: the caller reads the file with pydicom) every data set it does not cover."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from mapping.dicom.rendering import NATIVE_KEYWORDS, PNG, RenderOptions, Window, render, render_native
from storage.dicom_file import walked_with_pixels

RNG = np.random.default_rng(5)


def part10(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, little_endian=syntax != ExplicitVRBigEndian,
               implicit_vr=syntax == ImplicitVRLittleEndian)  # fmt: skip
    return out.getvalue()


def image(
    allocated: int = 16, stored: int = 12, signed: int = 0, frames: int = 1, **attributes: object
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 64, 48, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, stored - 1
    ds.PixelRepresentation = signed
    if frames > 1:
        ds.NumberOfFrames = frames
    low, high = (-(1 << (stored - 1)), 1 << (stored - 1)) if signed else (0, 1 << stored)
    dtype = f"<{'i' if signed else 'u'}{allocated // 8}"
    ds.PixelData = RNG.integers(low, high, (frames, 64, 48)).astype(dtype).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def both(data: bytes, frame: int, options: RenderOptions) -> tuple[bytes | None, bytes]:
    walked = walked_with_pixels(data, NATIVE_KEYWORDS)
    assert walked is not None
    return render_native(*walked, frame, options), render(dcmread(io.BytesIO(data)), frame, options)


CASES = {
    "12 bits with a stored window": image(WindowCenter=40, WindowWidth=400),
    "rescaled, two stored windows": image(
        RescaleSlope=0.5, RescaleIntercept=-1024, WindowCenter=[40, 400], WindowWidth=[400, 2000]
    ),
    "no window: the frame's min and max": image(RescaleSlope=1, RescaleIntercept=-1024),
    "sigmoid VOI LUT Function": image(WindowCenter=1000, WindowWidth=800, VOILUTFunction="SIGMOID"),
    "MONOCHROME1": image(PhotometricInterpretation="MONOCHROME1", WindowCenter=2000, WindowWidth=1000),
    "signed 16 bits": image(16, 16, 1, RescaleSlope=1, RescaleIntercept=0, WindowCenter=0, WindowWidth=3000),
    "signed 12 of 16 bits": image(16, 12, 1),
    "8 bits": image(8, 8, 0, WindowCenter=128, WindowWidth=200),
    "6 of 8 bits": image(8, 6, 0),
    "a window width of 0 is no window": image(WindowCenter=40, WindowWidth=0),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_same_bytes_as_pydicoms_data_set(name: str, syntax: str) -> None:
    data = part10(CASES[name], syntax)
    ours, theirs = both(data, 1, RenderOptions())
    assert ours is not None and ours == theirs


def test_unused_high_bits_are_masked_as_pydicom_masks_them() -> None:
    ds = image(WindowCenter=2000, WindowWidth=4000)
    pixels = np.frombuffer(ds.PixelData, dtype="<u2") | 0xF000  # an overlay in the high bits
    ds.PixelData = pixels.astype("<u2").tobytes()
    ours, theirs = both(part10(ds), 1, RenderOptions())
    assert ours == theirs


@pytest.mark.parametrize(
    "options",
    [
        RenderOptions(window=Window(100, 50)),
        RenderOptions(window=Window(100, 50, "LINEAR_EXACT")),
        RenderOptions(media_type=PNG),
        RenderOptions(quality=50, viewport=(20, 20)),
        RenderOptions(viewport=(256, None), shrink_only=True),
    ],
    ids=str,
)
def test_options_and_frames(options: RenderOptions) -> None:
    data = part10(image(frames=3, RescaleSlope=2, RescaleIntercept=-10, WindowCenter=40, WindowWidth=400))
    for frame in (1, 2, 3):
        ours, theirs = both(data, frame, options)
        assert ours is not None and ours == theirs
    walked = walked_with_pixels(data, NATIVE_KEYWORDS)
    assert walked is not None
    for frame in (0, 4):
        with pytest.raises(IndexError):
            render_native(*walked, frame, options)


def lut_item(**attributes: object) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = np.arange(0, 65536, 16, dtype="<u2").tobytes()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def test_what_it_leaves_to_pydicom() -> None:
    declined = {
        "VOI LUT Sequence": image(VOILUTSequence=Sequence([lut_item()])),
        "Modality LUT Sequence": image(ModalityLUTSequence=Sequence([lut_item(ModalityLUTType="HU")])),
        "palette colour": image(8, 8, 0, PhotometricInterpretation="PALETTE COLOR"),
        "RGB": image(8, 8, 0, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0),
        "32 bits": image(32, 32, 0),
        "pixel data cut short": image(),
    }
    declined["pixel data cut short"].PixelData = declined["pixel data cut short"].PixelData[:-64]
    for name, ds in declined.items():
        walked = walked_with_pixels(part10(ds), NATIVE_KEYWORDS)
        assert walked is not None, name
        assert render_native(*walked, 1, RenderOptions()) is None, name
    # not walked at all: a compressed or big endian syntax, no pixel data, no Part 10 file
    assert walked_with_pixels(part10(image(), ExplicitVRBigEndian), NATIVE_KEYWORDS) is None
    rle = image()
    rle.file_meta = FileMetaDataset()
    rle.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rle.compress(RLELossless)
    assert walked_with_pixels(part10(rle, RLELossless), NATIVE_KEYWORDS) is None
    no_pixels = image()
    del no_pixels.PixelData
    assert walked_with_pixels(part10(no_pixels), NATIVE_KEYWORDS) is None
    assert walked_with_pixels(b"not a DICOM file" * 20, NATIVE_KEYWORDS) is None
