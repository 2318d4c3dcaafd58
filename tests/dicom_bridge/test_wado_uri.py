"""WADO-URI (PS3.18 9) at /wado through the real app under uvicorn, with httpx: the Part 10 file as
stored or decoded, rendered frames, the parameters, refusals, tokens and the audit."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from facade.wiring import Services
from storage.audit.store import AuditStore
from tests.dicom_bridge.corpus import bundled
from tests.dicom_bridge.test_rendered import expected_gray, fresh, picture
from tests.dicom_bridge.test_stow import content_type, multipart, part10
from tests.dicom_bridge.test_wado import patient_of
from tests.dicom_factory import make_instance, new_uid
from tests.smart import bearer, issue_token

EXPLICIT = str(ExplicitVRLittleEndian)


@pytest.fixture
def wado(live_http: str, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live_http}/wado", timeout=60, headers=bearer(token)) as c:
        yield c


def store(live_http: str, token: str, *datasets: Dataset) -> None:
    with httpx.Client(base_url=f"{live_http}/dicomweb", timeout=60, headers=bearer(token)) as c:
        r = c.post("/studies", content=multipart(*(part10(ds) for ds in datasets)), headers=content_type())
        assert r.status_code == 200, r.text


def query(ds: Dataset, **extra: str) -> dict[str, str]:
    return {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
        **extra,
    }


def test_the_file_as_stored_and_decoded(
    live_http: str, token: str, wado: httpx.Client, tmp_path: Path
) -> None:
    rle = fresh(bundled(tmp_path)[str(RLELossless)])
    store(live_http, token, rle)
    r = wado.get("/", params=query(rle, contentType="application/dicom"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    assert r.content == part10(rle)  # the bytes as stored
    r = wado.get("/", params=query(rle, contentType="application/dicom", transferSyntax=EXPLICIT))
    got = dcmread(io.BytesIO(r.content))
    assert got.file_meta.TransferSyntaxUID == EXPLICIT and np.array_equal(got.pixel_array, rle.pixel_array)
    r = wado.get(
        "/", params=query(rle, contentType="application/dicom", transferSyntax="1.2.840.10008.1.2.4.50")
    )
    assert r.status_code == 406 and r.headers["content-type"].startswith("text/plain")


def test_rendered_frames_window_size_and_quality(live_http: str, token: str, wado: httpx.Client) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=40, columns=80, frames=2)
    store(live_http, token, ds)
    r = wado.get("", params=query(ds))  # /wado itself, no contentType: JPEG
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert np.abs(picture(r.content).astype(int) - expected_gray(ds, 1)).mean() < 2.0
    r = wado.get(
        "/",
        params=query(ds, contentType="image/png", frameNumber="2", windowCenter="3000", windowWidth="2000"),
    )
    assert np.array_equal(picture(r.content), expected_gray(ds, 2, window=(3000, 2000)))
    r = wado.get("/", params=query(ds, contentType="image/png", rows="20", columns="20"))
    assert Image.open(io.BytesIO(r.content)).size == (20, 10)  # the largest size, aspect ratio kept
    r = wado.get("/", params=query(ds, rows="80"))
    assert Image.open(io.BytesIO(r.content)).size == (160, 80)
    small = wado.get("/", params=query(ds, imageQuality="5"))
    big = wado.get("/", params=query(ds, imageQuality="100"))
    assert len(small.content) < len(big.content)
    r = wado.get("/", params=query(ds, contentType="image/gif,image/png"))
    assert r.headers["content-type"] == "image/png"


def test_an_instance_without_pixels_is_the_file(live_http: str, token: str, wado: httpx.Client) -> None:
    sr = make_instance(study_uid=new_uid(), series_uid=new_uid())
    del sr.PixelData
    store(live_http, token, sr)
    r = wado.get("/", params=query(sr))
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    r = wado.get("/", params=query(sr, contentType="image/jpeg"))
    assert r.status_code == 406 and "no pixel data" in r.text


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"requestType": "WADO-RS"}, 400),
        ({"objectUID": ""}, 400),
        ({"studyUID": "1.2.abc"}, 400),
        ({"objectUID": "1.2.3.4.5.6"}, 404),
        ({"frameNumber": "3"}, 404),
        ({"frameNumber": "x"}, 400),
        ({"windowCenter": "40"}, 400),
        ({"rows": "-1"}, 400),
        ({"imageQuality": "0"}, 400),
        ({"anonymize": "yes"}, 400),
        ({"contentType": "text/html"}, 406),
    ],
)
def test_refusals(
    live_http: str, token: str, wado: httpx.Client, change: dict[str, str], status: int
) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=8, columns=8)
    store(live_http, token, ds)
    params = {k: v for k, v in {**query(ds), **change}.items() if v}
    r = wado.get("/", params=params)
    assert r.status_code == status and r.headers["content-type"].startswith("text/plain"), r.text
    assert wado.get("/", params={k: v for k, v in query(ds).items() if k != "seriesUID"}).status_code == 400


def test_undecodable_is_a_clean_refusal(
    live_http: str, token: str, wado: httpx.Client, tmp_path: Path
) -> None:
    ds = fresh(bundled(tmp_path)["1.2.840.10008.1.2.4.51"])
    store(live_http, token, ds)
    r = wado.get("/", params=query(ds))
    assert r.status_code == 406 and "cannot be" in r.text
    assert wado.get("/", params=query(ds, contentType="application/dicom")).status_code == 200


def test_tokens_and_patients(services: Services, live_http: str, token: str) -> None:
    mine = make_instance(study_uid=new_uid(), series_uid=new_uid(), patient_id="PID-A", patient_name="Own^P")
    theirs = make_instance(
        study_uid=new_uid(), series_uid=new_uid(), patient_id="PID-B", patient_name="Other^P"
    )
    store(live_http, token, mine, theirs)
    with httpx.Client(base_url=f"{live_http}/wado", timeout=30) as anonymous:
        r = anonymous.get("/", params=query(mine))
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    patient = patient_of(services, mine.StudyInstanceUID)
    own_token = issue_token(services, "patient/ImagingStudy.rs", patient=patient)
    with httpx.Client(base_url=f"{live_http}/wado", headers=bearer(own_token), timeout=30) as own:
        assert own.get("/", params=query(mine)).status_code == 200
        for content in ("image/jpeg", "application/dicom"):
            other = own.get("/", params=query(theirs, contentType=content))
            unknown = own.get("/", params={**query(theirs, contentType=content), "objectUID": new_uid()})
            assert (
                (other.status_code, other.text)
                == (unknown.status_code, unknown.text)
                == (404, "no such instance\n")
            )
    wrong = issue_token(services, "system/Patient.rs")
    with httpx.Client(base_url=f"{live_http}/wado", headers=bearer(wrong), timeout=30) as c:
        assert c.get("/", params=query(mine)).status_code == 403


def test_every_request_is_audited(services: Services, live_http: str, token: str, wado: httpx.Client) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=8, columns=8)
    store(live_http, token, ds)
    wado.get("/", params=query(ds))
    wado.get("/", params={"requestType": "WADO"})
    services.audit.flush()
    events = AuditStore(services.db).events(source="wado")
    assert [(e.action, e.outcome, e.status) for e in events] == [
        ("retrieve", "allowed", 200),
        ("retrieve", "refused", 400),
    ]
    assert all(e.path == "/wado/" and e.client_id == "tests" for e in events)  # no query string
