"""Transcoding to Explicit VR Little Endian: every transfer syntax of the corpus, pixels as
pydicom decodes the original."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from mapping.dicom.transcode import EXPLICIT_VR_LE, CannotTranscode, can_transcode, transcode
from tests.dicom_bridge.corpus import BUNDLED, bundled

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
