"""WADO-RS retrieve, frames and WADO-URI in a lossless compressed transfer syntax other than the
stored one, through the real app under uvicorn: dicomweb-client asks (httpx for the Accepts it
does not send: several ranges, q-values), pydicom with pylibjpeg, openjpeg and pyjpegls decodes
what arrives, to the pixels of the instance as stored. What cannot
be encoded is left out (206, Warning), refused (406), or, when the Accept allows, sent in the
next syntax it names."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGLSLossless

from tests.dicom_bridge.corpus import bundled
from tests.dicom_bridge.test_stow import part10
from tests.dicom_bridge.test_wado import store
from tests.dicom_factory import make_instance, new_uid
from tests.mapping.dicom.sr.factories import ct_dose_sr
from tests.smart import bearer

EXPLICIT = str(ExplicitVRLittleEndian)
BASELINE = "1.2.840.10008.1.2.4.50"
RLE, JLS, J2K = "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"
DICOM = "application/dicom"


def accept(*syntaxes: str) -> dict[str, str]:
    return {"Accept": ", ".join(f'multipart/related; type="{DICOM}"; transfer-syntax={s}' for s in syntaxes)}


def instance(
    study: str, series: str, n: int, *, size: int = 64, syntax: str | None = None, **attrs: Any
) -> Dataset:
    ds = make_instance(
        study_uid=study, series_uid=series, instance_number=n, rows=size, columns=size, **attrs
    )
    if syntax is not None:
        ds.compress(UID(syntax), generate_instance_uid=False)
    return ds


def report(study: str, patient_id: str) -> Dataset:
    """An SR: no pixel data, so nothing to compress."""
    ds = ct_dose_sr(sop_uid=new_uid())
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, new_uid(), patient_id
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def datasets(response: httpx.Response) -> list[Dataset]:
    """The parts of a multipart/related body, read by pydicom."""
    boundary = response.headers["content-type"].split("boundary=")[1].encode()
    chunks = response.content.split(b"--" + boundary)[1:-1]
    return [dcmread(io.BytesIO(chunk.partition(b"\r\n\r\n")[2][:-2])) for chunk in chunks]


def part_syntaxes(response: httpx.Response) -> list[str]:
    return [
        line.split("transfer-syntax=")[1]
        for line in response.text.split("\r\n")
        if line.startswith(f"Content-Type: {DICOM}")
    ]


@pytest.mark.parametrize("target", [RLE, JLS, J2K])
def test_dicomweb_client_gets_a_series_encoded_losslessly(
    client: DICOMwebClient, http: httpx.Client, target: str
) -> None:
    """Uncompressed, RLE, JPEG-LS and multi-frame instances, retrieved in each lossless syntax:
    each part says it, decodes to the stored pixels, and is the same instance."""
    study, series = new_uid(), new_uid()
    sent = [
        instance(study, series, 1),
        instance(study, series, 2, syntax=RLE),
        instance(study, series, 3, syntax=JLS),
        make_instance(study_uid=study, series_uid=series, instance_number=4, rows=40, columns=48, frames=3),
    ]
    store(http, *(part10(ds) for ds in sent))
    got = client.retrieve_series(study, series, media_types=((DICOM, target),))
    assert [ds.SOPInstanceUID for ds in got] == [ds.SOPInstanceUID for ds in sent]
    for ds, original in zip(got, sent, strict=True):
        assert ds.file_meta.TransferSyntaxUID == target
        assert np.array_equal(ds.pixel_array, original.pixel_array)
    r = http.get(f"/studies/{study}/series/{series}", headers=accept(target))
    assert r.status_code == 200 and part_syntaxes(r) == [target] * 4
    one = client.retrieve_instance(study, series, sent[0].SOPInstanceUID, media_types=((DICOM, target),))
    assert one.file_meta.TransferSyntaxUID == target
    assert np.array_equal(one.pixel_array, sent[0].pixel_array)
    whole = client.retrieve_study(study, media_types=((DICOM, target),))
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in whole} == {target}


def test_what_cannot_be_encoded_is_left_out_or_refused(http: httpx.Client) -> None:
    """JPEG 2000: openjpeg takes no image under 32 pixels a side, and an SR has no pixel data. In
    a series they are left out (206, Warning); alone, 406; never a crash."""
    study, series = new_uid(), new_uid()
    big, small = instance(study, series, 1), instance(study, series, 2, size=8)
    sr = report(study, str(big.PatientID))
    store(http, part10(big), part10(small), part10(sr))
    r = http.get(f"/studies/{study}", headers=accept(J2K))
    assert r.status_code == 206 and "2 instance(s) cannot be sent" in r.headers["warning"]
    assert part_syntaxes(r) == [J2K]
    assert r.content.endswith(b"--\r\n")  # the whole of what was announced
    small_url = f"/studies/{study}/series/{series}/instances/{small.SOPInstanceUID}"
    r = http.get(small_url, headers=accept(J2K))
    assert r.status_code == 406 and "32 pixels" in r.text
    r = http.get(f"/studies/{study}", headers=accept(JLS))  # JPEG-LS takes the small one too
    assert r.status_code == 206 and "1 instance(s)" in r.headers["warning"]
    assert part_syntaxes(r) == [JLS, JLS]
    # lossy: never made by compressing, whatever the instance
    r = http.get(f"/studies/{study}", headers=accept("1.2.840.10008.1.2.4.50"))
    assert r.status_code == 406 and "never lossily" in r.text


def test_the_accept_quality_order_is_tried_per_instance(http: httpx.Client) -> None:
    """JPEG 2000 first, Explicit VR Little Endian second: each instance goes in the first it can,
    and the response is whole (200)."""
    study, series = new_uid(), new_uid()
    big, small = instance(study, series, 1), instance(study, series, 2, size=8)
    sr = report(study, str(big.PatientID))
    store(http, part10(big), part10(small), part10(sr))
    r = http.get(f"/studies/{study}", headers=accept(J2K, EXPLICIT))  # equal q: in the order given
    got = datasets(r)
    assert r.status_code == 200 and [str(ds.file_meta.TransferSyntaxUID) for ds in got] == [
        J2K,
        EXPLICIT,
        EXPLICIT,
    ]
    assert np.array_equal(got[0].pixel_array, big.pixel_array)
    assert np.array_equal(got[1].pixel_array, small.pixel_array)
    headers = {
        "Accept": f'multipart/related; type="{DICOM}"; transfer-syntax={EXPLICIT}; q=0.4, '
        f'multipart/related; type="{DICOM}"; transfer-syntax={RLE}; q=0.9'
    }
    r = http.get(f"/studies/{study}", headers=headers)
    assert r.status_code == 200 and part_syntaxes(r) == [RLE, RLE, EXPLICIT]


def test_an_encoder_that_fails_where_the_header_said_it_would_not(http: httpx.Client) -> None:
    """JPEG-LS on a 3 x 3 image: pyjpegls's output outgrows its buffer, which no header shows. A
    single instance is then 406 (or Explicit VR Little Endian when also acceptable); in a series
    the next acceptable syntax is used, and with none the body is cut off before its close
    delimiter, so that no client takes it for the whole."""
    study, series = new_uid(), new_uid()
    tiny, big = instance(study, series, 1, size=3), instance(study, series, 2)
    store(http, part10(tiny), part10(big))
    url = f"/studies/{study}/series/{series}"
    r = http.get(f"{url}/instances/{tiny.SOPInstanceUID}", headers=accept(JLS))
    assert r.status_code == 406 and "cannot be encoded" in r.text
    r = http.get(f"{url}/instances/{tiny.SOPInstanceUID}", headers=accept(JLS, EXPLICIT))
    assert r.status_code == 200 and part_syntaxes(r) == [EXPLICIT]
    r = http.get(url, headers=accept(JLS, EXPLICIT))
    assert r.status_code == 200 and part_syntaxes(r) == [EXPLICIT, JLS]
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(url, headers=accept(JLS))


def test_a_lossy_instance_as_stored_or_decoded_then_encoded_losslessly(
    http: httpx.Client, tmp_path: Path
) -> None:
    """JPEG Baseline stored (pydicom's bundled YBR file): asked by its own syntax it goes as
    stored; asked in JPEG-LS, its decoded pixels are encoded losslessly, Lossy Image Compression
    left as it was (the instance is no lossier than stored)."""
    path = bundled(tmp_path)[BASELINE]
    baseline = dcmread(path)
    store(http, path.read_bytes())
    r = http.get(url_of(baseline), headers=accept(BASELINE))
    assert r.status_code == 200 and part_syntaxes(r) == [BASELINE]
    assert path.read_bytes() in r.content
    r = http.get(url_of(baseline), headers=accept(JLS))
    assert r.status_code == 200 and part_syntaxes(r) == [JLS]
    (got,) = datasets(r)
    assert got.file_meta.TransferSyntaxUID == JLS and got.SOPInstanceUID == baseline.SOPInstanceUID
    assert got.get("LossyImageCompression") == baseline.get("LossyImageCompression")
    assert np.array_equal(got.pixel_array, baseline.pixel_array)


def test_wado_uri_transfer_syntax(http: httpx.Client, live_http: str, token: str) -> None:
    ds = instance(new_uid(), new_uid(), 1, syntax=RLE)
    store(http, part10(ds))
    params = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
        "contentType": DICOM,
    }
    with httpx.Client(base_url=f"{live_http}/wado", headers=bearer(token), timeout=60) as wado:
        r = wado.get("", params={**params, "transferSyntax": JLS})
        assert r.status_code == 200 and r.headers["content-type"] == DICOM
        got = dcmread(io.BytesIO(r.content))
        assert got.file_meta.TransferSyntaxUID == JPEGLSLossless
        assert np.array_equal(got.pixel_array, ds.pixel_array)
        r = wado.get("", params={**params, "transferSyntax": "1.2.840.10008.1.2.4.50"})
        assert r.status_code == 406 and "losslessly" in r.text


def frames_stream_pixels(stream: bytes, like: Dataset, syntax: str) -> np.ndarray:
    """One frame's bit stream decoded by pydicom, as a client holding the instance's header does."""
    ds = Dataset()
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "PhotometricInterpretation"):  # fmt: skip
        setattr(ds, keyword, like[keyword].value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    return ds.pixel_array


def url_of(ds: Dataset) -> str:
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


@pytest.mark.parametrize(
    ("media", "syntax"), [("image/jls", JLS), ("image/jp2", J2K), ("image/dicom-rle", RLE)]
)
def test_dicomweb_client_gets_frames_in_an_image_media_type(
    client: DICOMwebClient, http: httpx.Client, media: str, syntax: str
) -> None:
    """PS3.18 8.7.3.5.3: frames of an uncompressed multi-frame and of a JPEG-LS instance, each
    frame encoded on its own (or, stored in the syntax asked, its bit stream as stored)."""
    study, series = new_uid(), new_uid()
    multi = make_instance(
        study_uid=study, series_uid=series, instance_number=1, rows=40, columns=48, frames=3
    )
    stored_jls = instance(study, series, 2, syntax=JLS)
    store(http, part10(multi), part10(stored_jls))
    frames = client.retrieve_instance_frames(
        study, series, multi.SOPInstanceUID, frame_numbers=[3, 1], media_types=((media, syntax),)
    )
    whole = multi.pixel_array
    assert [frames_stream_pixels(f, multi, syntax).tolist() for f in frames] == [
        whole[2].tolist(),
        whole[0].tolist(),
    ]
    (frame,) = client.retrieve_instance_frames(
        study, series, stored_jls.SOPInstanceUID, frame_numbers=[1], media_types=((media, syntax),)
    )
    assert np.array_equal(frames_stream_pixels(frame, stored_jls, syntax), stored_jls.pixel_array)
    if syntax == JLS:
        assert frame == next(generate_frames(stored_jls.PixelData, number_of_frames=1))  # as stored
    r = http.get(f"{url_of(multi)}/frames/2", headers={"Accept": f'multipart/related; type="{media}"'})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(f'multipart/related; type="{media}"')
    assert f"Content-Type: {media}; transfer-syntax={syntax}" in r.text[:300]


def test_frames_that_cannot_be_given(http: httpx.Client) -> None:
    study, series = new_uid(), new_uid()
    small, rle = instance(study, series, 1, size=8), instance(study, series, 2, syntax=RLE)
    store(http, part10(small), part10(rle))
    jp2 = 'multipart/related; type="image/jp2"'
    r = http.get(f"{url_of(small)}/frames/1", headers={"Accept": jp2})
    assert r.status_code == 406 and "32 pixels" in r.text
    fallback = {"Accept": f'{jp2}, multipart/related; type="application/octet-stream"; q=0.5'}
    r = http.get(f"{url_of(small)}/frames/1", headers=fallback)
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )
    assert small.PixelData in r.content
    # image/jpeg: its default, JPEG Lossless SV1, and the lossy ones have no encoder here
    r = http.get(f"{url_of(small)}/frames/1", headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert r.status_code == 406
    # image/*: the frames as stored, in the image type of their syntax
    r = http.get(f"{url_of(rle)}/frames/1", headers={"Accept": 'multipart/related; type="image/*"'})
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        'multipart/related; type="image/dicom-rle"'
    )
    assert next(generate_frames(rle.PixelData, number_of_frames=1)) in r.content
    r = http.get(f"{url_of(small)}/frames/1", headers={"Accept": 'multipart/related; type="image/*"'})
    assert r.status_code == 406
