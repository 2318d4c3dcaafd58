"""WADO-RS rendered resources, thumbnails and frames through the real app under uvicorn:
dicomweb-client's retrieve_instance_rendered / retrieve_instance_frames, httpx for the rest. Each
picture is compared with pydicom's own decode put through the PS3.3 C.11 formulas here in numpy:
exactly for PNG, within a tolerance for JPEG."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.pixels.processing import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from facade.wiring import Services
from storage.audit.store import AuditStore
from tests.dicom_bridge.corpus import bundled
from tests.dicom_bridge.test_stow import part10
from tests.dicom_bridge.test_wado import patient_of, store
from tests.dicom_factory import make_instance, new_uid
from tests.mapping.dicom.sr.factories import ct_dose_sr
from tests.smart import bearer, issue_token

EXPLICIT = str(ExplicitVRLittleEndian)
PNG = {"Accept": "image/png"}


def fresh(name_or_path: str | Path, **attributes: object) -> Dataset:
    """A bundled pydicom file (or a corpus copy) with UIDs of its own, so that tests never collide."""
    path = name_or_path if isinstance(name_or_path, Path) else get_testdata_file(name_or_path, download=False)
    assert path is not None
    ds = dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = new_uid(), new_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
    ds.PatientID = "PID-RENDER"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def url_of(ds: Dataset) -> str:
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def linear(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, to 0..255."""
    out = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(out, 0, 255)


def expected_gray(ds: Dataset, frame: int = 1, window: tuple[float, float] | None = None) -> np.ndarray:
    """pydicom's decode, its Modality LUT, then the window (given, stored, or min/max, LINEAR_EXACT)."""
    pixels = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) > 1:
        pixels = pixels[frame - 1]
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if window is None and "WindowCenter" in ds:
        window = (float(ds.WindowCenter), float(ds.WindowWidth))
    if window is not None:
        out = linear(values, *window)
    else:
        low, high = values.min(), values.max()
        out = (values - low) / (high - low) * 255.0
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 255.0 - out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_a_ct_with_rescale_rendered_as_png_and_jpeg(client: DICOMwebClient, http: httpx.Client) -> None:
    ct = fresh("CT_small.dcm")  # Rescale Intercept -1024, no stored window: min/max
    windowed = fresh("CT_small.dcm", WindowCenter=40, WindowWidth=400)
    store(http, part10(ct), part10(windowed))
    r = http.get(f"{url_of(ct)}/rendered", headers=PNG)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array_equal(picture(r.content), expected_gray(ct))
    png = http.get(f"{url_of(windowed)}/rendered", headers=PNG)
    assert np.array_equal(picture(png.content), expected_gray(windowed))
    jpeg = client.retrieve_instance_rendered(
        windowed.StudyInstanceUID, windowed.SeriesInstanceUID, windowed.SOPInstanceUID
    )
    assert jpeg[:2] == b"\xff\xd8"
    assert np.abs(picture(jpeg).astype(int) - expected_gray(windowed)).mean() < 2.0
    # an explicit window overrides the stored one; quality changes the size
    r = http.get(f"{url_of(windowed)}/rendered", params={"window": "0,2000,linear"}, headers=PNG)
    assert np.array_equal(picture(r.content), expected_gray(windowed, window=(0, 2000)))
    small = http.get(f"{url_of(windowed)}/rendered", params={"quality": "5"})
    assert small.headers["content-type"] == "image/jpeg" and len(small.content) < len(jpeg)


def test_monochrome1_is_inverted(http: httpx.Client) -> None:
    ds = make_instance(
        study_uid=new_uid(),
        series_uid=new_uid(),
        PhotometricInterpretation="MONOCHROME1",
        WindowCenter=1000,
        WindowWidth=1500,
    )
    store(http, part10(ds))
    r = http.get(f"{url_of(ds)}/rendered", headers=PNG)
    got = picture(r.content)
    assert np.array_equal(got, expected_gray(ds))
    assert got[0, 0] == 255  # the lowest value is white in MONOCHROME1


def test_colour_rgb_ybr_and_palette(http: httpx.Client) -> None:
    rgb = fresh("SC_rgb_rle_2frame.dcm")  # RLE, RGB, two frames
    ybr = fresh("SC_ybr_full_422_uncompressed.dcm")
    ybr_jpeg = fresh("examples_ybr_color.dcm")  # JPEG Baseline, YBR_FULL_422, 30 frames
    palette = fresh("examples_palette.dcm")
    store(http, *(part10(ds) for ds in (rgb, ybr, ybr_jpeg, palette)))
    for frame in (1, 2):
        r = http.get(f"{url_of(rgb)}/frames/{frame}/rendered", headers=PNG)
        assert r.status_code == 200
        assert np.array_equal(picture(r.content), rgb.pixel_array[frame - 1])
    r = http.get(f"{url_of(ybr)}/rendered", headers=PNG)
    assert np.array_equal(picture(r.content), ybr.pixel_array)  # pydicom converts YBR to RGB too
    r = http.get(f"{url_of(ybr_jpeg)}/frames/5/rendered", headers=PNG)
    assert np.abs(picture(r.content).astype(int) - ybr_jpeg.pixel_array[4].astype(int)).mean() < 2.0
    from pydicom.pixels.processing import apply_color_lut

    r = http.get(f"{url_of(palette)}/rendered", headers=PNG)
    expected = apply_color_lut(palette.pixel_array, palette)
    assert np.array_equal(picture(r.content), np.rint(expected / 257).astype(np.uint8))


def test_multi_frame_frames_and_viewport(client: DICOMwebClient, http: httpx.Client) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=32, columns=64, frames=3)
    store(http, part10(ds))
    for frame in (1, 3):
        r = http.get(
            f"{url_of(ds)}/frames/{frame}/rendered", params={"window": "2000,4000,linear"}, headers=PNG
        )
        assert np.array_equal(picture(r.content), expected_gray(ds, frame, window=(2000, 4000)))
    r = http.get(f"{url_of(ds)}/frames/2/rendered", params={"viewport": "32,32"}, headers=PNG)
    assert Image.open(io.BytesIO(r.content)).size == (32, 16)  # fits inside, aspect ratio kept
    r = http.get(f"{url_of(ds)}/rendered", params={"viewport": "256,256"}, headers=PNG)
    assert Image.open(io.BytesIO(r.content)).size == (256, 128)
    frames = client.retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[3, 1]
    )
    whole = ds.pixel_array
    assert frames == [whole[2].astype("<u2").tobytes(), whole[0].astype("<u2").tobytes()]
    for frames_url, status in (("4", 404), ("0", 400), ("1,x", 400), ("2,9", 404)):
        r = http.get(f"{url_of(ds)}/frames/{frames_url}")
        assert r.status_code == status, frames_url
        assert r.headers["content-type"].startswith("text/plain")
        if "," not in frames_url:
            r = http.get(f"{url_of(ds)}/frames/{frames_url}/rendered")
            assert r.status_code == status, frames_url
    assert http.get(f"{url_of(ds)}/frames/1,2/rendered").status_code == 400  # one frame per picture


def test_compressed_sources(client: DICOMwebClient, http: httpx.Client, tmp_path: Path) -> None:
    corpus = bundled(tmp_path)
    rle = fresh(corpus[str(RLELossless)])  # MR, RLE Lossless, stored window 600/1600
    jpeg = fresh(corpus["1.2.840.10008.1.2.4.70"])  # RGB, JPEG Lossless SV1
    store(http, part10(rle), part10(jpeg))
    r = http.get(f"{url_of(rle)}/rendered", headers=PNG)
    assert np.array_equal(picture(r.content), expected_gray(rle))
    r = http.get(f"{url_of(jpeg)}/rendered", headers=PNG)
    assert np.array_equal(picture(r.content), jpeg.pixel_array)
    (frame,) = client.retrieve_instance_frames(
        rle.StudyInstanceUID, rle.SeriesInstanceUID, rle.SOPInstanceUID, frame_numbers=[1]
    )
    assert frame == rle.pixel_array.astype("<i2" if rle.PixelRepresentation else "<u2").tobytes()
    # the frames as stored when the Accept names the stored syntax
    as_stored = f'multipart/related; type="application/octet-stream"; transfer-syntax={RLELossless}'
    r = http.get(f"{url_of(rle)}/frames/1", headers={"Accept": as_stored})
    assert r.status_code == 200 and f"transfer-syntax={RLELossless}" in r.text[:200]
    assert next(generate_frames(rle.PixelData, number_of_frames=1)) in r.content
    other = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50'
    assert http.get(f"{url_of(rle)}/frames/1", headers={"Accept": other}).status_code == 406


def test_undecodable_pixels_are_a_clean_refusal(http: httpx.Client, tmp_path: Path) -> None:
    """12-bit JPEG Extended: a decoder exists for the syntax but none reads this bit stream."""
    ds = fresh(bundled(tmp_path)["1.2.840.10008.1.2.4.51"])
    store(http, part10(ds))
    for suffix in ("/rendered", "/thumbnail", "/frames/1"):
        r = http.get(url_of(ds) + suffix)
        assert r.status_code == 406, suffix
        assert r.headers["content-type"].startswith("text/plain") and "cannot be" in r.text
    sr = make_instance(study_uid=new_uid(), series_uid=new_uid())
    del sr.PixelData
    store(http, part10(sr))
    r = http.get(f"{url_of(sr)}/rendered")
    assert r.status_code == 406 and "no pixel data" in r.text
    assert http.get(f"{url_of(ds)}/metadata").status_code == 200  # the server is still up


def test_thumbnails_of_instance_series_and_study(http: httpx.Client) -> None:
    study, series = new_uid(), new_uid()
    sent = [
        make_instance(study_uid=study, series_uid=series, instance_number=i, rows=200, columns=400)
        for i in (1, 2, 3)
    ]
    store(http, *(part10(ds) for ds in sent))
    middle = http.get(f"{url_of(sent[1])}/rendered", params={"viewport": "128,128"}, headers=PNG)
    for url in (f"/studies/{study}/series/{series}/thumbnail", f"/studies/{study}/thumbnail"):
        r = http.get(url, headers=PNG)
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (128, 64)
        assert r.content == middle.content  # the middle instance of the series
    r = http.get(f"{url_of(sent[0])}/thumbnail")
    assert r.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(r.content)).size == (128, 64)
    r = http.get(f"{url_of(sent[0])}/frames/1/thumbnail", params={"viewport": "40,40"})
    assert Image.open(io.BytesIO(r.content)).size == (40, 20)


@pytest.mark.parametrize(
    ("params", "accept", "status"),
    [
        ({}, "application/dicom", 406),
        ({}, 'multipart/related; type="application/dicom"', 406),
        ({}, "image/gif", 406),
        ({}, "image/png;q=0, image/jpeg;q=0", 406),
        ({"window": "40,400"}, "image/png", 400),
        ({"window": "40,0,linear"}, "image/png", 400),
        ({"viewport": "10,10,0,0,5,5"}, "image/png", 400),
        ({"viewport": "100000,10"}, "image/png", 400),
        ({"quality": "101"}, "image/jpeg", 400),
    ],
)
def test_refusals(http: httpx.Client, params: dict[str, str], accept: str, status: int) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=8, columns=8)
    store(http, part10(ds))
    r = http.get(f"{url_of(ds)}/rendered", params=params, headers={"Accept": accept})
    assert r.status_code == status and r.headers["content-type"].startswith("text/plain"), r.text
    assert http.get(f"{url_of(ds)}/rendered", headers={"Accept": "image/*"}).status_code == 200


def test_a_patient_token_gets_404_for_another_patients_pixels(
    services: Services, live_http: str, http: httpx.Client
) -> None:
    mine = make_instance(study_uid=new_uid(), series_uid=new_uid(), patient_id="PID-A", patient_name="Own^P")
    theirs = make_instance(
        study_uid=new_uid(), series_uid=new_uid(), patient_id="PID-B", patient_name="Other^P"
    )
    store(http, part10(mine), part10(theirs))
    token = issue_token(
        services, "patient/ImagingStudy.rs", patient=patient_of(services, mine.StudyInstanceUID)
    )
    unknown = make_instance(study_uid=new_uid(), series_uid=new_uid())
    with httpx.Client(base_url=f"{live_http}/dicomweb", headers=bearer(token), timeout=30) as own:
        for suffix in ("/rendered", "/thumbnail", "/frames/1", "/frames/1/rendered"):
            assert own.get(url_of(mine) + suffix).status_code == 200, suffix
            other, never = own.get(url_of(theirs) + suffix), own.get(url_of(unknown) + suffix)
            assert (
                (other.status_code, other.text)
                == (never.status_code, never.text)
                == (404, "no such instance\n")
            )
        series = f"/studies/{theirs.StudyInstanceUID}/series/{theirs.SeriesInstanceUID}/thumbnail"
        assert own.get(series).status_code == 404
        assert own.get(f"/studies/{theirs.StudyInstanceUID}/thumbnail").status_code == 404
    with httpx.Client(base_url=f"{live_http}/dicomweb", timeout=30) as anonymous:
        assert anonymous.get(url_of(mine) + "/rendered").status_code == 401


def test_rendered_requests_are_audited(services: Services, http: httpx.Client) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=8, columns=8)
    store(http, part10(ds))
    http.get(f"{url_of(ds)}/rendered")
    http.get(f"{url_of(ds)}/frames/7")
    services.audit.flush()
    events = [e for e in AuditStore(services.db).events(source="dicomweb") if e.method == "GET"]
    assert [(e.action, e.status, e.path) for e in events] == [
        ("retrieve", 200, f"/dicomweb{url_of(ds)}/rendered"),
        ("retrieve", 404, f"/dicomweb{url_of(ds)}/frames/7"),
    ]


def test_a_series_and_a_study_rendered_one_image_per_frame(http: httpx.Client) -> None:
    """PS3.18 10.4.1.1.3: every frame of every image instance, in order, one part each; an SR in
    the study has no rendering and is left out."""
    study, series = new_uid(), new_uid()
    sent = [
        make_instance(study_uid=study, series_uid=series, instance_number=i, rows=32, columns=48)
        for i in (1, 2)
    ]
    report = ct_dose_sr(sop_uid=new_uid())
    report.StudyInstanceUID, report.SeriesInstanceUID = study, new_uid()
    report.PatientID = sent[0].PatientID
    report.file_meta = FileMetaDataset()
    report.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    store(http, *(part10(ds) for ds in [*sent, report]))
    singles = [http.get(f"{url_of(ds)}/rendered", headers=PNG).content for ds in sent]
    assert http.get(f"/studies/{study}/series/{report.SeriesInstanceUID}/rendered").status_code == 404
    for url, accept in (
        (f"/studies/{study}/series/{series}/rendered", 'multipart/related; type="image/png"'),
        (f"/studies/{study}/rendered", "image/png"),
    ):
        r = http.get(url, headers={"Accept": accept})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith('multipart/related; type="image/png"; boundary=')
        boundary = r.headers["content-type"].split("boundary=")[1].encode()
        parts = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in r.content.split(b"--" + boundary)[1:-1]]
        assert parts == singles
    jpeg = http.get(f"/studies/{study}/rendered")
    assert jpeg.headers["content-type"].startswith('multipart/related; type="image/jpeg"')
    assert http.get(f"/studies/{new_uid()}/rendered").status_code == 404
    assert http.get(f"/studies/{study}/rendered", headers={"Accept": "application/dicom"}).status_code == 406
