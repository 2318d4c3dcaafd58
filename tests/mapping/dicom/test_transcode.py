"""Transcoding: every transfer syntax of the corpus to Explicit VR Little Endian and to each
lossless syntax we encode, pixels as pydicom decodes the original; what the header foretells;
frames encoded one by one."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from mapping.dicom.transcode import (
    EXPLICIT_VR_LE,
    CannotTranscode,
    PixelHeader,
    Way,
    can_transcode,
    encoded_frames,
    transcode,
    unencodable,
    way,
)
from tests.dicom_bridge.corpus import BUNDLED, bundled
from tests.dicom_factory import make_instance, new_uid

JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"  # the bundled file is 12-bit: no installed decoder reads it
SYNTAXES = [ts for ts in (*BUNDLED, "1.2.840.10008.1.2.4.81") if ts != JPEG_EXTENDED]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bundled(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("ts", SYNTAXES)
def test_every_stored_syntax_becomes_explicit_vr_little_endian(corpus: dict[str, Path], ts: str) -> None:
    assert can_transcode(ts, EXPLICIT_VR_LE)
    original = dcmread(corpus[ts])
    out = dcmread(io.BytesIO(transcode(dcmread(corpus[ts]), EXPLICIT_VR_LE)))
    assert out.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE
    assert out.SOPInstanceUID == original.SOPInstanceUID  # the same instance, another encoding
    assert np.array_equal(out.pixel_array, original.pixel_array)


def test_what_cannot_be_transcoded() -> None:
    assert not can_transcode("1.2.840.10008.1.2.4.100", EXPLICIT_VR_LE)  # MPEG2: no decoder
    assert not can_transcode(EXPLICIT_VR_LE, "1.2.840.10008.1.2.4.50")  # no encoding on retrieve
    assert not can_transcode("1.2.3", EXPLICIT_VR_LE)  # not a transfer syntax
    assert can_transcode("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.50")  # as stored


def test_an_undecodable_bit_stream_is_cannot_transcode(corpus: dict[str, Path]) -> None:
    assert can_transcode(JPEG_EXTENDED, EXPLICIT_VR_LE)  # a decoder exists, for 8-bit
    with pytest.raises(CannotTranscode, match="cannot be decoded"):
        transcode(dcmread(corpus[JPEG_EXTENDED]), EXPLICIT_VR_LE)
    ds = dcmread(corpus["1.2.840.10008.1.2.5"])  # RLE
    ds.PixelData = ds.PixelData[:40] + b"\xff" * 64
    with pytest.raises(CannotTranscode):
        transcode(ds, EXPLICIT_VR_LE)


LOSSLESS_TARGETS = ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"]


@pytest.mark.parametrize("target", LOSSLESS_TARGETS)
@pytest.mark.parametrize("ts", SYNTAXES)
def test_every_stored_syntax_encodes_losslessly(corpus: dict[str, Path], ts: str, target: str) -> None:
    """Decoded where stored compressed, then encoded: the pixels pydicom decodes from the
    original, the same instance; or, where the header foretells the encoder's refusal, not tried."""
    assert way(ts, target) is (Way.AS_STORED if ts == target else Way.ENCODE)
    original = dcmread(corpus[ts])
    header = PixelHeader.of(dcmread(corpus[ts], stop_before_pixels=True), has_pixel_data=True)
    if unencodable(header, ts, target) is not None:
        assert target == "1.2.840.10008.1.2.4.90" and min(original.Rows, original.Columns) < 32
        return
    out = dcmread(io.BytesIO(transcode(dcmread(corpus[ts]), target)))
    assert out.file_meta.TransferSyntaxUID == target
    assert out.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(out.pixel_array, original.pixel_array)


def test_the_ways_between_syntaxes() -> None:
    assert way(EXPLICIT_VR_LE, EXPLICIT_VR_LE) is Way.AS_STORED
    assert way("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2") is Way.DECODE  # Implicit VR: DIMSE
    assert way("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90") is Way.ENCODE
    assert way(EXPLICIT_VR_LE, "1.2.840.10008.1.2.2") is None  # big endian only as stored
    assert way(EXPLICIT_VR_LE, "1.2.840.10008.1.2.4.81") is None  # lossy: never made here
    assert way(EXPLICIT_VR_LE, "1.2.840.10008.1.2.4.91") is None
    assert way("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.80") is None  # no decoder
    assert way(EXPLICIT_VR_LE, "1.2.840.10008.1.2.4.201") is None  # HTJ2K: no encoder
    assert can_transcode(EXPLICIT_VR_LE, "1.2.840.10008.1.2.4.80")
    assert not can_transcode("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2")  # DICOMweb: Explicit VR only


def test_a_16_bit_big_endian_instance_is_swapped_when_decoded() -> None:
    path = get_testdata_file("MR_small_bigendian.dcm", download=False)
    original = dcmread(path)
    assert original.BitsAllocated == 16
    for target in (EXPLICIT_VR_LE, "1.2.840.10008.1.2.4.80"):
        out = dcmread(io.BytesIO(transcode(dcmread(path), target)))
        assert np.array_equal(out.pixel_array, original.pixel_array), target


def test_colour_by_plane_is_encoded_by_pixel(corpus: dict[str, Path]) -> None:
    original = dcmread(corpus["1.2.840.10008.1.2.2"])  # RGB, Planar Configuration 1
    assert original.PlanarConfiguration == 1
    for target in LOSSLESS_TARGETS:
        out = dcmread(io.BytesIO(transcode(dcmread(corpus["1.2.840.10008.1.2.2"]), target)))
        assert np.array_equal(out.pixel_array, original.pixel_array), target


def header(**attributes: object) -> PixelHeader:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), **attributes)  # type: ignore[arg-type]
    return PixelHeader.of(ds, has_pixel_data="PixelData" in ds)


def test_what_the_header_foretells() -> None:
    jls, j2k, rle = "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"
    assert unencodable(header(rows=64, columns=64), EXPLICIT_VR_LE, j2k) is None
    assert "32 pixels" in str(unencodable(header(rows=8, columns=64), EXPLICIT_VR_LE, j2k))
    assert unencodable(header(rows=8, columns=8), EXPLICIT_VR_LE, jls) is None
    no_pixels = PixelHeader.of(Dataset(), has_pixel_data=False)
    assert "no pixel data" in str(unencodable(no_pixels, EXPLICIT_VR_LE, rle))
    thirty_two = header(BitsAllocated=32, BitsStored=32, HighBit=31)
    assert "PS3.5 8.2" in str(unencodable(thirty_two, EXPLICIT_VR_LE, jls))
    ybr = header(PhotometricInterpretation="YBR_FULL_422", SamplesPerPixel=3, BitsAllocated=8, BitsStored=8)
    assert unencodable(ybr, EXPLICIT_VR_LE, rle) is not None  # subsampled: no lossless profile
    assert unencodable(ybr, "1.2.840.10008.1.2.4.50", rle) is None  # JPEG decodes it to RGB


def test_frames_are_encoded_one_by_one(corpus: dict[str, Path]) -> None:
    original = dcmread(corpus["1.2.840.10008.1.2.5"])
    multi = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=40, columns=48, frames=3)
    for target in LOSSLESS_TARGETS:
        for ds, frames in ((original, [1]), (multi, [3, 1])):
            if ds.file_meta.TransferSyntaxUID == target:
                continue  # as stored: Retrieve.frames gives the stored bit streams
            streams = encoded_frames(dcmread(io.BytesIO(part10_bytes(ds))), frames, target)
            whole = ds.pixel_array if len(frames) == 1 else ds.pixel_array[[f - 1 for f in frames]]
            for n, stream in enumerate(streams):
                got = decoded_stream(stream, ds, target)
                assert np.array_equal(got, whole if len(frames) == 1 else whole[n]), target
    with pytest.raises(CannotTranscode, match="cannot be encoded"):
        encoded_frames(dcmread(corpus[EXPLICIT_VR_LE]), [1], "1.2.840.10008.1.2.4.50")


def part10_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def decoded_stream(stream: bytes, like: Dataset, target: str) -> np.ndarray:
    """One frame's bit stream decoded by pydicom, as a client holding the instance's header does."""
    ds = Dataset()
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "PhotometricInterpretation"):  # fmt: skip
        setattr(ds, keyword, like[keyword].value)
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(target)
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    return ds.pixel_array
