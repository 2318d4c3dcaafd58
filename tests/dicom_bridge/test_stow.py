"""STOW-RS through the real app under uvicorn, with dicomweb-client and raw HTTP (httpx, a bare socket)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from pydicom.filewriter import dcmwrite
from requests.exceptions import HTTPError
from sqlalchemy import func, select

from facade.http import build_http_app
from facade.wiring import Services
from storage.dicom_index.models import InstanceRow
from storage.fhir_store.visibility import ALL
from tests.dicom_factory import make_instance, meta_names_another_instance, new_uid
from tests.smart import bearer

FAILED_SOP, REFERENCED_SOP, FAILURE_REASON, RETRIEVE_URL = "00081198", "00081199", "00081197", "00081190"
SOP_CLASS, SOP_INSTANCE = "00081150", "00081155"
CONFLICT, CANNOT_UNDERSTAND = 0xC001, 0xC000


def part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def multipart(*bodies: bytes, boundary: str = "xyzzy", part_type: str = "application/dicom") -> bytes:
    out = b""
    for body in bodies:
        out += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def part(body: bytes, part_type: str = "application/dicom", boundary: str = "xyzzy") -> bytes:
    return f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + body + b"\r\n"


def content_type(boundary: str = "xyzzy") -> dict[str, str]:
    return {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}


def chunked(data: bytes, size: int = 8192) -> Iterator[bytes]:
    """A body without Content-Length (Transfer-Encoding: chunked), as streaming clients send it."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def items(response: httpx.Response, tag: str) -> list[dict[str, dict[str, list[object]]]]:
    return response.json().get(tag, {}).get("Value", [])  # type: ignore[no-any-return]


def staging_is_empty(services: Services) -> bool:
    """Spooled parts are gone; polled because uvicorn may finish a request after the client gave up."""
    deadline = time.monotonic() + 10
    while list(services.ingest.staging_dir().iterdir()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def instance_count(services: Services) -> int:
    with services.db.read() as s:
        return s.scalar(select(func.count()).select_from(InstanceRow)) or 0


def test_dicomweb_client_stores_a_study(client: DICOMwebClient, services: Services, live_http: str) -> None:
    study = new_uid()
    series = [new_uid(), new_uid()]
    datasets = [
        make_instance(study_uid=study, series_uid=s, series_number=n + 1, instance_number=i)
        for n, s in enumerate(series)
        for i in (1, 2, 3)
    ]
    response = client.store_instances(datasets=datasets)
    assert "FailedSOPSequence" not in response
    assert response.RetrieveURL == f"{live_http}/dicomweb/studies/{study}"
    referenced = {item.ReferencedSOPInstanceUID: item for item in response.ReferencedSOPSequence}
    assert set(referenced) == {ds.SOPInstanceUID for ds in datasets}
    for ds in datasets:
        item = referenced[ds.SOPInstanceUID]
        assert item.ReferencedSOPClassUID == ds.SOPClassUID
        assert item.RetrieveURL == (
            f"{live_http}/dicomweb/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        )
    body = services.search.read("ImagingStudy", study, visibility=ALL).body
    assert body is not None and (body["numberOfSeries"], body["numberOfInstances"]) == (2, 6)
    assert staging_is_empty(services)


def test_stored_bytes_are_the_bytes_sent(http: httpx.Client, services: Services) -> None:
    sent = [part10(make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=512, columns=512))]
    sent.append(part10(make_instance(study_uid=new_uid(), series_uid=new_uid())))
    r = http.post("/studies", content=chunked(multipart(*sent), 1000), headers=content_type())
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/dicom+json")
    assert r.json()[RETRIEVE_URL] == {"vr": "UR"}  # two studies: the Type 2 Retrieve URL is empty
    with services.db.read() as s:
        keys = list(s.scalars(select(InstanceRow.blob_key).order_by(InstanceRow.size.desc())))
    for key, data in zip(keys, sent, strict=True):
        with services.blobs.open(key) as f:
            assert f.read() == data
    assert staging_is_empty(services)


def test_duplicates_are_success(http: httpx.Client, client: DICOMwebClient, services: Services) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    client.store_instances(datasets=[ds])
    r = http.post("/studies", content=multipart(part10(ds), part10(ds)), headers=content_type())
    assert r.status_code == 200
    assert [i[SOP_INSTANCE]["Value"] for i in items(r, REFERENCED_SOP)] == [[ds.SOPInstanceUID]] * 2
    assert FAILED_SOP not in r.json()
    assert len(client.store_instances(datasets=[ds]).ReferencedSOPSequence) == 1
    assert instance_count(services) == 1


def test_posting_to_another_study_fails_every_instance(http: httpx.Client, services: Services) -> None:
    study = new_uid()
    datasets = [make_instance(study_uid=study, series_uid=new_uid()) for _ in range(2)]
    r = http.post(f"/studies/{new_uid()}", content=multipart(*map(part10, datasets)), headers=content_type())
    assert r.status_code == 409
    failed = items(r, FAILED_SOP)
    assert [i[FAILURE_REASON]["Value"] for i in failed] == [[CONFLICT], [CONFLICT]]
    assert [i[SOP_INSTANCE]["Value"][0] for i in failed] == [ds.SOPInstanceUID for ds in datasets]
    assert [i[SOP_CLASS]["Value"][0] for i in failed] == [ds.SOPClassUID for ds in datasets]
    assert REFERENCED_SOP not in r.json()
    assert instance_count(services) == 0
    assert staging_is_empty(services)


def test_posting_to_the_right_study(http: httpx.Client, live_http: str) -> None:
    study = new_uid()
    ds = make_instance(study_uid=study, series_uid=new_uid())
    r = http.post(f"/studies/{study}", content=multipart(part10(ds)), headers=content_type())
    assert r.status_code == 200
    assert r.json()[RETRIEVE_URL]["Value"] == [f"{live_http}/dicomweb/studies/{study}"]


def test_good_and_bad_parts_give_202_with_both_sequences(http: httpx.Client, services: Services) -> None:
    good = make_instance(study_uid=new_uid(), series_uid=new_uid())
    no_series = make_instance(study_uid=new_uid(), series_uid=new_uid())
    del no_series.SeriesInstanceUID
    json_part = make_instance(study_uid=new_uid(), series_uid=new_uid())
    body = (
        part(part10(no_series))
        + part(b"not DICOM at all")
        + part(part10(json_part), part_type="application/dicom+json")  # bulk data parts: not supported
        + part(part10(good))
        + b"--xyzzy--\r\n"
    )
    r = http.post("/studies", content=body, headers=content_type())
    assert r.status_code == 202
    assert [i[SOP_INSTANCE]["Value"] for i in items(r, REFERENCED_SOP)] == [[good.SOPInstanceUID]]
    failed = items(r, FAILED_SOP)
    assert [i[FAILURE_REASON]["Value"] for i in failed] == [[CANNOT_UNDERSTAND]] * 3
    assert [i.get(SOP_INSTANCE, {}).get("Value") for i in failed] == [
        [no_series.SOPInstanceUID],
        None,  # not DICOM: there is no SOP Instance to name
        [json_part.SOPInstanceUID],
    ]
    assert instance_count(services) == 1
    assert staging_is_empty(services)


def test_only_bad_parts_give_409(http: httpx.Client) -> None:
    r = http.post("/studies", content=multipart(b"junk", b""), headers=content_type())
    assert r.status_code == 409
    assert len(items(r, FAILED_SOP)) == 2


VALID = multipart(part10(make_instance(study_uid=new_uid(), series_uid=new_uid())))


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (VALID, {"Content-Type": 'multipart/related; type="application/dicom"'}, 400),  # no boundary
        (VALID, {"Content-Type": 'multipart/related; boundary="bad;boundary"'}, 400),
        (VALID[:-12], content_type(), 400),  # no close delimiter
        (VALID[: len(VALID) // 2], content_type(), 400),  # cut in the middle of the instance
        (VALID, content_type("other"), 400),  # the declared boundary never comes
        (b"--xyzzy--\r\n", content_type(), 400),  # no parts
        (b"--xyzzy\r\nno colon\r\n\r\nx\r\n--xyzzy--\r\n", content_type(), 400),
        (VALID, {"Content-Type": "application/dicom"}, 415),
        (VALID, {"Content-Type": "application/json"}, 415),
        (VALID, {}, 415),
        (VALID, {"Content-Type": 'multipart/related; type="application/dicom+json"; boundary=xyzzy'}, 415),
        (VALID, {**content_type(), "Accept": "application/dicom+xml"}, 406),
        (VALID, {**content_type(), "Accept": "application/dicom+json; q=0, text/html"}, 406),
    ],
)
def test_malformed_requests(
    http: httpx.Client, services: Services, body: bytes, headers: dict[str, str], status: int
) -> None:
    r = http.post("/studies", content=body, headers=headers)
    assert r.status_code == status
    assert instance_count(services) == 0
    assert staging_is_empty(services)


def test_no_type_parameter_means_application_dicom(http: httpx.Client) -> None:
    headers = {"Content-Type": "multipart/related; boundary=xyzzy", "Accept": "*/*"}
    assert http.post("/studies", content=VALID, headers=headers).status_code == 200


def test_invalid_study_uid_in_the_url(http: httpx.Client) -> None:
    assert http.post("/studies/not-a-uid", content=VALID, headers=content_type()).status_code == 400


def test_client_going_away_leaves_no_spooled_files(live_http: str, services: Services, token: str) -> None:
    big = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=1024, columns=1024, frames=2)
    data = multipart(part10(big))  # 4 MiB: the first half is spooled before the client goes away
    staging = services.ingest.staging_dir()
    url = urlsplit(live_http)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        head = (
            "POST /dicomweb/studies HTTP/1.1\r\nHost: test\r\n"
            f"Authorization: Bearer {token}\r\n"
            'Content-Type: multipart/related; type="application/dicom"; boundary=xyzzy\r\n'
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[: len(data) // 2])
        deadline = time.monotonic() + 10
        while not list(staging.iterdir()):  # the part is being spooled
            assert time.monotonic() < deadline, "nothing was spooled"
            time.sleep(0.01)
    assert staging_is_empty(services)
    assert instance_count(services) == 0


def test_dicomweb_client_sees_conflicts_as_errors(client: DICOMwebClient) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    with pytest.raises(HTTPError):
        client.store_instances(datasets=[ds], study_instance_uid=new_uid())


LIMIT = 64 * 1024


@contextlib.contextmanager
def serving(services: Services, **settings: object) -> Iterator[str]:
    """The app with other settings, under its own uvicorn (like `live_http`); its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    changed = services.settings.model_copy(update={"base_url": url, **settings})
    app = build_http_app(dataclasses.replace(services, settings=changed))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture
def small_limit(services: Services) -> Iterator[str]:
    """The app with a 64 KiB upload limit."""
    with serving(services, stow_max_bytes=LIMIT) as url:
        yield url


def test_over_the_limit_is_413(small_limit: str, services: Services, token: str) -> None:
    big = multipart(part10(make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=256, columns=256)))
    small = multipart(part10(make_instance(study_uid=new_uid(), series_uid=new_uid())))
    assert len(small) < LIMIT < len(big)
    with httpx.Client(base_url=f"{small_limit}/dicomweb", timeout=60, headers=bearer(token)) as http:
        assert http.post("/studies", content=big, headers=content_type()).status_code == 413  # Content-Length
        r = http.post("/studies", content=chunked(big), headers=content_type())  # counted while streaming
        assert r.status_code == 413
        assert http.post("/studies", content=chunked(small), headers=content_type()).status_code == 200
    assert staging_is_empty(services)
    assert instance_count(services) == 1


def test_file_meta_naming_another_instance_is_refused(http: httpx.Client, services: Services) -> None:
    """PS3.10 7.1: (0002,0003) must be the data set's (0008,0018); C-STORE refuses the same mismatch."""
    good = make_instance(study_uid=new_uid(), series_uid=new_uid())
    liar = make_instance(study_uid=new_uid(), series_uid=new_uid())
    data = meta_names_another_instance(part10(liar), liar.SOPInstanceUID)
    r = http.post("/studies", content=multipart(data, part10(good)), headers=content_type())
    assert r.status_code == 202
    assert [i[SOP_INSTANCE]["Value"] for i in items(r, REFERENCED_SOP)] == [[good.SOPInstanceUID]]
    assert [i[FAILURE_REASON]["Value"] for i in items(r, FAILED_SOP)] == [[CANNOT_UNDERSTAND]]
    assert instance_count(services) == 1
    assert staging_is_empty(services)


MAX_PARTS = 50


@pytest.fixture
def few_parts(services: Services, token: str) -> Iterator[httpx.Client]:
    """A client of the app limited to MAX_PARTS parts per request."""
    with (
        serving(services, stow_max_parts=MAX_PARTS) as url,
        httpx.Client(base_url=f"{url}/dicomweb", timeout=60, headers=bearer(token)) as http,
    ):
        yield http


def stow_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "dicom_bridge.dicomweb.stow" and r.levelno >= logging.WARNING
    ]


def test_more_parts_than_the_limit_is_413_while_streaming(
    few_parts: httpx.Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """The part past the limit is refused as it begins: this body has no close delimiter, so a
    server that parsed the whole body first would answer 400."""
    body = part(b"x") * (MAX_PARTS + 1) + part(b"y") * 1000  # never closed
    with caplog.at_level(logging.INFO, logger="dicom_bridge"):
        r = few_parts.post("/studies", content=chunked(body, 64), headers=content_type())
    assert r.status_code == 413 and f"more than {MAX_PARTS} parts" in r.text
    (line,) = stow_warnings(caplog)
    assert line.getMessage() == "stow.refused" and line.__dict__["http_status"] == 413
    assert instance_count(services) == 0
    assert staging_is_empty(services)


def test_many_refused_parts_log_one_summary_line(
    few_parts: httpx.Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_instance(study_uid=new_uid(), series_uid=new_uid())
    bodies = [b"x"] * (MAX_PARTS - 11) + [b""] * 10 + [part10(good)]
    with caplog.at_level(logging.INFO, logger="dicom_bridge"):
        r = few_parts.post("/studies", content=multipart(*bodies), headers=content_type())
    assert r.status_code == 202 and len(items(r, FAILED_SOP)) == MAX_PARTS - 1
    (line,) = stow_warnings(caplog)
    assert line.getMessage() == "stow.parts_refused" and line.__dict__["rejected"] == MAX_PARTS - 1
    reasons = line.__dict__["reasons"]
    assert sum(reasons.values()) == MAX_PARTS - 1 and all(k.startswith("0xc000 ") for k in reasons)
    assert instance_count(services) == 1
    assert staging_is_empty(services)
