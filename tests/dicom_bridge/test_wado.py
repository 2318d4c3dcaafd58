"""WADO-RS retrieve through the real app under uvicorn: dicomweb-client for the DICOM and
metadata resources, httpx for what a client library would not send (bad Accept, no token)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian, RLELossless
from requests.exceptions import HTTPError

from facade.wiring import Services
from storage.audit.store import AuditStore
from storage.fhir_store.visibility import ALL
from tests.dicom_bridge.corpus import bundled, jpeg_lossless_process14
from tests.dicom_bridge.test_stow import content_type, multipart, part10
from tests.dicom_factory import make_instance, new_uid
from tests.smart import bearer, issue_token

EXPLICIT = str(ExplicitVRLittleEndian)
MPEG2 = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile: no decoder, so never transcoded


def parts(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related body: (headers, bytes)."""
    kind = response.headers["content-type"]
    assert kind.startswith('multipart/related; type="application/dicom"'), kind
    boundary = kind.split("boundary=")[1].encode()
    body = response.content
    assert body.endswith(b"--" + boundary + b"--\r\n")
    out = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        out.append((headers, data[:-2]))
    return out


def store(http: httpx.Client, *bodies: bytes) -> None:
    r = http.post("/studies", content=multipart(*bodies), headers=content_type())
    assert r.status_code == 200, r.text


def patient_of(services: Services, study: str) -> str:
    body = services.search.read("ImagingStudy", study, visibility=ALL).body
    assert body is not None
    return str(body["subject"]["reference"]).removeprefix("Patient/")


@dataclass
class Study:
    uid: str
    series: dict[str, list[bytes]]  # series UID -> Part 10 files as sent, in DICOM order


@pytest.fixture
def study(http: httpx.Client) -> Study:
    """Two series of two instances."""
    study_uid = new_uid()
    series: dict[str, list[bytes]] = {}
    for n in (1, 2):
        series_uid = new_uid()
        series[series_uid] = [
            part10(
                make_instance(study_uid=study_uid, series_uid=series_uid, series_number=n, instance_number=i)
            )
            for i in (1, 2)
        ]
    store(http, *(b for files in series.values() for b in files))
    return Study(study_uid, series)


def uids(data: bytes) -> tuple[str, str, str]:
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def test_dicomweb_client_retrieves_study_series_instance_as_stored(
    client: DICOMwebClient, http: httpx.Client, study: Study
) -> None:
    study_uid = study.uid
    sent = [b for files in study.series.values() for b in files]
    got = client.retrieve_study(study_uid)
    assert [ds.SOPInstanceUID for ds in got] == [uids(b)[2] for b in sent]  # DICOM order
    r = http.get(f"/studies/{study_uid}")
    assert r.status_code == 200
    assert [data for _, data in parts(r)] == sent  # the bytes as stored
    assert {h["Content-Type"] for h, _ in parts(r)} == {f"application/dicom; transfer-syntax={EXPLICIT}"}
    series_uid, files = next(iter(study.series.items()))
    got = client.retrieve_series(study_uid, series_uid)
    assert [ds.SOPInstanceUID for ds in got] == [uids(b)[2] for b in files]
    sop = uids(files[1])[2]
    ds = client.retrieve_instance(study_uid, series_uid, sop)
    assert ds.SOPInstanceUID == sop and ds.PatientName == "Testperson^Alice"
    for accept in ("*/*", 'multipart/related; type="application/dicom"; transfer-syntax=*'):
        r = http.get(f"/studies/{study_uid}/series/{series_uid}/instances/{sop}", headers={"Accept": accept})
        assert [data for _, data in parts(r)] == [files[1]]


def test_compressed_instances_as_stored_and_in_explicit_vr_little_endian(
    client: DICOMwebClient, http: httpx.Client, tmp_path: Path
) -> None:
    jpeg = jpeg_lossless_process14(tmp_path)  # encoded by dcmtk's dcmcjpeg
    rle = bundled(tmp_path)[str(RLELossless)]
    for path in (jpeg, rle):
        stored = path.read_bytes()
        store(http, stored)
        original = dcmread(path)
        study_uid, series_uid, sop = (
            original.StudyInstanceUID,
            original.SeriesInstanceUID,
            original.SOPInstanceUID,
        )
        url = f"/studies/{study_uid}/series/{series_uid}/instances/{sop}"
        (headers, data), *_ = parts(http.get(url))
        assert data == stored
        assert (
            headers["Content-Type"]
            == f"application/dicom; transfer-syntax={original.file_meta.TransferSyntaxUID}"
        )
        for ds in (
            client.retrieve_instance(
                study_uid, series_uid, sop, media_types=(("application/dicom", EXPLICIT),)
            ),
            client.retrieve_series(study_uid, series_uid, media_types=(("application/dicom", EXPLICIT),))[0],
        ):
            assert ds.file_meta.TransferSyntaxUID == EXPLICIT
            assert ds.SOPInstanceUID == sop
            assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_an_instance_that_cannot_be_transcoded(http: httpx.Client, study: Study) -> None:
    """PS3.18 10.4.3: with others, it is left out (206, Warning); alone, 406."""
    study_uid = study.uid
    series_uid, files = next(iter(study.series.items()))
    video = make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=3)
    video.file_meta.TransferSyntaxUID = MPEG2
    video.PixelData = encapsulate([b"\0\0\1\xb3" + b"\0" * 60])
    video["PixelData"].VR = "OB"
    store(http, part10(video))
    explicit = {"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}'}
    r = http.get(f"/studies/{study_uid}/series/{series_uid}", headers=explicit)
    assert r.status_code == 206 and "1 instance(s) cannot be sent" in r.headers["warning"]
    assert [data for _, data in parts(r)] == files  # already Explicit VR Little Endian: as stored
    r = http.get(
        f"/studies/{study_uid}/series/{series_uid}/instances/{video.SOPInstanceUID}", headers=explicit
    )
    assert r.status_code == 406 and "Explicit VR Little Endian" in r.text
    r = http.get(f"/studies/{study_uid}/series/{series_uid}/instances/{video.SOPInstanceUID}")
    assert r.status_code == 200 and dcmread(io.BytesIO(parts(r)[0][1])).file_meta.TransferSyntaxUID == MPEG2


@pytest.mark.parametrize(
    "accept",
    [
        "application/dicom+json",
        'multipart/related; type="application/octet-stream"',
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50',
        'multipart/related; type="application/dicom"; q=0',
    ],
)
def test_unsupported_accept_is_406(http: httpx.Client, study: Study, accept: str) -> None:
    study_uid = study.uid
    r = http.get(f"/studies/{study_uid}", headers={"Accept": accept})
    assert r.status_code == 406 and r.headers["content-type"].startswith("text/plain")
    assert r.text.strip()


def test_unknown_uids_are_404_and_bad_uids_400(http: httpx.Client, study: Study) -> None:
    study_uid = study.uid
    series_uid, files = next(iter(study.series.items()))
    other_series = next(s for s in study.series if s != series_uid)
    sop = uids(files[0])[2]
    for url, why in [
        (f"/studies/{new_uid()}", "no such study"),
        (f"/studies/{study_uid}/series/{new_uid()}", "no such series"),
        (f"/studies/{new_uid()}/series/{series_uid}", "no such series"),  # a series under another study
        (f"/studies/{study_uid}/series/{other_series}/instances/{sop}", "no such instance"),
        (f"/studies/{study_uid}/series/{series_uid}/instances/{new_uid()}", "no such instance"),
        (f"/studies/{new_uid()}/metadata", "no such study"),
    ]:
        r = http.get(url)
        assert (r.status_code, r.text.strip()) == (404, why), url
    r = http.get("/studies/1.2.abc")
    assert r.status_code == 400 and "not a valid UID" in r.text


def test_metadata_at_each_level(
    client: DICOMwebClient, live_http: str, study: Study, http: httpx.Client
) -> None:
    study_uid = study.uid
    series_uid, files = next(iter(study.series.items()))
    sop = uids(files[0])[2]
    everything = client.retrieve_study_metadata(study_uid)
    assert len(everything) == 4
    assert len(client.retrieve_series_metadata(study_uid, series_uid)) == 2
    one = client.retrieve_instance_metadata(study_uid, series_uid, sop)
    assert one["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Testperson^Alice"}]}
    assert one["7FE00010"] == {
        "vr": "OW",
        "BulkDataURI": f"{live_http}/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop}"
        "/bulkdata/7FE00010",
    }
    assert one["00020010"]["Value"] == [EXPLICIT]
    ds = Dataset.from_json(one, bulk_data_uri_handler=lambda uri: b"")
    assert (ds.SOPInstanceUID, ds.Rows, ds.Columns) == (sop, 64, 64)
    r = http.get(f"/studies/{study_uid}/metadata", headers={"Accept": "application/dicom+xml"})
    assert r.status_code == 406


def test_metadata_of_compressed_pixel_data_is_bulk_data(
    client: DICOMwebClient, http: httpx.Client, tmp_path: Path
) -> None:
    path = bundled(tmp_path)["1.2.840.10008.1.2.4.90"]  # JPEG 2000 lossless
    store(http, path.read_bytes())
    ds = dcmread(path, stop_before_pixels=True)
    one = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert one["7FE00010"]["vr"] == "OB" and one["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")
    assert all("InlineBinary" not in v or len(v["InlineBinary"]) < 2000 for v in one.values())


def test_a_patient_token_sees_only_its_own_patient(
    services: Services, live_http: str, http: httpx.Client
) -> None:
    mine, theirs = new_uid(), new_uid()
    a = make_instance(study_uid=mine, series_uid=new_uid(), patient_id="PID-A", patient_name="Own^Patient")
    b = make_instance(
        study_uid=theirs, series_uid=new_uid(), patient_id="PID-B", patient_name="Other^Patient"
    )
    store(http, part10(a), part10(b))
    for scope in ("patient/ImagingStudy.rs", "patient/ImagingStudy.r"):
        token = issue_token(services, scope, patient=patient_of(services, mine))
        with httpx.Client(base_url=f"{live_http}/dicomweb", headers=bearer(token), timeout=30) as own:
            for ds, status in ((a, 200), (b, 404)):
                base = f"/studies/{ds.StudyInstanceUID}"
                series = f"{base}/series/{ds.SeriesInstanceUID}"
                instance = f"{series}/instances/{ds.SOPInstanceUID}"
                for url in (
                    base,
                    series,
                    instance,
                    f"{base}/metadata",
                    f"{series}/metadata",
                    f"{instance}/metadata",
                ):
                    r = own.get(url)
                    assert r.status_code == status, (scope, url)
                    if status == 404:
                        assert r.text.strip().startswith("no such")
    # a patient user (fhirUser Patient/x) with user/ scopes: the same compartment
    token = issue_token(services, "user/ImagingStudy.rs", fhir_user=f"Patient/{patient_of(services, mine)}")
    with httpx.Client(base_url=f"{live_http}/dicomweb", headers=bearer(token), timeout=30) as user:
        assert user.get(f"/studies/{mine}").status_code == 200
        assert user.get(f"/studies/{theirs}").status_code == 404


def test_no_token_is_401_and_wrong_scope_403(services: Services, live_http: str, study: Study) -> None:
    study_uid = study.uid
    with httpx.Client(base_url=f"{live_http}/dicomweb", timeout=30) as anonymous:
        for url in (f"/studies/{study_uid}", f"/studies/{study_uid}/metadata"):
            r = anonymous.get(url)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    for scope, patient in (
        ("system/Patient.rs system/ImagingStudy.c", None),
        ("patient/ImagingStudy.rs", None),
    ):
        token = issue_token(services, scope, patient=patient)
        with httpx.Client(base_url=f"{live_http}/dicomweb", headers=bearer(token), timeout=30) as c:
            r = c.get(f"/studies/{study_uid}")
            assert r.status_code == 403 and "insufficient_scope" in r.headers["www-authenticate"], scope


def test_every_retrieve_is_audited(services: Services, http: httpx.Client, study: Study) -> None:
    study_uid = study.uid
    http.get(f"/studies/{study_uid}")
    http.get(f"/studies/{study_uid}/metadata")
    http.get(f"/studies/{new_uid()}")
    services.audit.flush()
    events = [e for e in AuditStore(services.db).events(source="dicomweb") if e.method == "GET"]
    assert [(e.action, e.outcome, e.status) for e in events] == [
        ("retrieve", "allowed", 200),
        ("retrieve", "allowed", 200),
        ("retrieve", "refused", 404),
    ]
    assert events[0].path == f"/dicomweb/studies/{study_uid}" and events[0].client_id == "tests"


def test_dicomweb_client_sees_an_unknown_study_as_an_http_error(http: httpx.Client) -> None:
    with pytest.raises(HTTPError):
        DICOMwebClient(url=str(http.base_url), headers=dict(http.headers)).retrieve_study(new_uid())


def test_bulk_data_uris_answer_with_the_pixel_data(
    client: DICOMwebClient, http: httpx.Client, study: Study, tmp_path: Path
) -> None:
    """Native pixel data as one part in Explicit VR Little Endian; encapsulated pixel data one
    frame per part, as stored (PS3.18 8.7.3.3)."""
    series_uid, files = next(iter(study.series.items()))
    native = dcmread(io.BytesIO(files[0]))
    meta = client.retrieve_instance_metadata(study.uid, series_uid, native.SOPInstanceUID)
    (value,) = client.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"])
    assert value == native.PixelData
    r = http.get(meta["7FE00010"]["BulkDataURI"].split("/dicomweb", 1)[1])
    assert r.headers["content-type"].startswith('multipart/related; type="application/octet-stream"')
    assert f"Content-Type: application/octet-stream; transfer-syntax={EXPLICIT}" in r.text[:300]
    corpus = bundled(tmp_path)
    for ts in (str(RLELossless), "1.2.840.10008.1.2.4.90"):  # RLE, JPEG 2000 lossless
        path = corpus[ts]
        store(http, path.read_bytes())
        ds = dcmread(path)
        meta = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        frames = client.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"])
        assert frames == list(
            generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1))
        )
        explicit = {
            "Accept": f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT}'
        }
        r = http.get(meta["7FE00010"]["BulkDataURI"].split("/dicomweb", 1)[1], headers=explicit)
        assert r.status_code == 406
    base = f"/studies/{study.uid}/series/{series_uid}/instances/{native.SOPInstanceUID}/bulkdata"
    for tag in ("00100010", "60003000", "zz"):  # not binary, absent, not a tag
        r = http.get(f"{base}/{tag}")
        assert (r.status_code, r.text.strip()) == (404, "no such bulk data"), tag


def test_a_bit_stream_that_fails_to_decode(http: httpx.Client, tmp_path: Path) -> None:
    """12-bit JPEG Extended has a decoder by its transfer syntax but none reads this bit stream:
    alone it is 406; in a series the body is cut off before its close delimiter."""
    path = bundled(tmp_path)["1.2.840.10008.1.2.4.51"]
    store(http, path.read_bytes())
    ds = dcmread(path, stop_before_pixels=True)
    explicit = {"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}'}
    series = f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    r = http.get(f"{series}/instances/{ds.SOPInstanceUID}", headers=explicit)
    assert r.status_code == 406 and "cannot be decoded" in r.text
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(series, headers=explicit)
    assert http.get(series).status_code == 200  # as stored it is fine


@pytest.mark.parametrize(
    "ts",
    ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.80"],
)
def test_every_bulk_data_uri_answers(
    client: DICOMwebClient, http: httpx.Client, tmp_path: Path, ts: str
) -> None:
    """Implicit VR (an overlay added: its VR comes from the dictionary), deflated (read inflated:
    nothing deferred), big endian, JPEG-LS: each BulkDataURI of the metadata gives the value."""
    path = bundled(tmp_path)[ts]
    ds = dcmread(path)
    if ts == "1.2.840.10008.1.2":
        ds.add_new(0x60003000, "OB", b"\1" * 2048)
        ds.save_as(path)
    store(http, path.read_bytes())
    meta = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    uris = {tag: v["BulkDataURI"] for tag, v in meta.items() if "BulkDataURI" in v}
    assert "7FE00010" in uris
    for tag, uri in uris.items():
        got = client.retrieve_bulkdata(uri)
        value = ds[int(tag, 16)].value
        if tag == "7FE00010" and ds.file_meta.TransferSyntaxUID.is_compressed:
            assert got == list(generate_frames(value, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
        else:
            assert b"".join(got) == value, tag


def test_one_instance_is_one_body_up_to_a_mebibyte_and_streamed_above(http: httpx.Client) -> None:
    """A small instance is read before the response starts (a Content-Length); a larger one
    streams (chunked); both are the bytes stored, in one part."""
    study_uid, series_uid = new_uid(), new_uid()
    small = part10(make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=1))
    large = part10(
        make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=2, rows=1024, columns=1024)
    )
    assert len(small) < 1 << 20 < len(large)
    store(http, small, large)
    accept = {"Accept": 'multipart/related; type="application/dicom"'}
    for data, whole in ((small, True), (large, False)):
        study, series, instance = uids(data)
        r = http.get(f"/studies/{study}/series/{series}/instances/{instance}", headers=accept)
        assert r.status_code == 200
        assert ("content-length" in r.headers) == whole
        assert (r.headers.get("transfer-encoding") == "chunked") == (not whole)
        ((headers, body),) = parts(r)
        assert body == data
        assert headers["Content-Type"] == f"application/dicom; transfer-syntax={ExplicitVRLittleEndian}"


def test_one_instance_whose_file_is_gone_is_404(services: Services, http: httpx.Client) -> None:
    data = part10(make_instance(study_uid=new_uid(), series_uid=new_uid()))
    store(http, data)
    study, series, instance = uids(data)
    (found,) = services.retrieve.instances(study, series, instance, visibility=ALL)
    services.blobs.delete(found.blob_key)
    r = http.get(f"/studies/{study}/series/{series}/instances/{instance}")
    assert r.status_code == 404
    assert "missing" in r.text
