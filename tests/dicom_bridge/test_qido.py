"""QIDO-RS through the real app under uvicorn: dicomweb-client's searches, httpx for the rest."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset

from facade.wiring import Services
from tests.dicom_bridge.test_stow import content_type, multipart, part10
from tests.dicom_bridge.test_wado import patient_of
from tests.dicom_factory import make_instance, new_uid
from tests.smart import bearer, issue_token

JAPANESE = "Yamada^Tarou=山田^太郎=やまだ^たろう"


@dataclass
class Archive:
    alice: tuple[str, str]  # two studies: MR (two series), CT
    bob: str  # one CT study
    mr_series: tuple[str, str]
    instances: list[Dataset]


@pytest.fixture
def archive(http: httpx.Client) -> Archive:
    a1, a2, b1 = new_uid(), new_uid(), new_uid()
    s1, s2 = new_uid(), new_uid()
    alice = {"patient_id": "PID-A", "patient_name": JAPANESE, "SpecificCharacterSet": ["", "ISO 2022 IR 87"]}
    bob = {"patient_id": "PID-B", "patient_name": "Probe^Bob"}
    tiny = {"rows": 4, "columns": 4}
    instances = [
        make_instance(study_uid=a1, series_uid=s1, instance_number=1, **alice, **tiny),
        make_instance(study_uid=a1, series_uid=s1, instance_number=2, **alice, **tiny),
        make_instance(study_uid=a1, series_uid=s2, series_number=2, **alice, **tiny),
        make_instance(
            study_uid=a2, series_uid=new_uid(), modality="CT", StudyDate="20231224", **alice, **tiny
        ),
        make_instance(study_uid=b1, series_uid=new_uid(), modality="CT", StudyDate="20240401", **bob, **tiny),
    ]
    r = http.post("/studies", content=multipart(*(part10(ds) for ds in instances)), headers=content_type())
    assert r.status_code == 200, r.text
    return Archive((a1, a2), b1, (s1, s2), instances)


def _uids(found: list[dict], tag: str = "0020000D") -> set[str]:  # type: ignore[type-arg]
    return {item[tag]["Value"][0] for item in found}


def test_dicomweb_client_searches_each_level(client: DICOMwebClient, archive: Archive) -> None:
    a1, a2 = archive.alice
    studies = client.search_for_studies(search_filters={"PatientID": "PID-A"})
    assert _uids(studies) == {a1, a2}
    mr = next(s for s in studies if s["0020000D"]["Value"][0] == a1)
    assert mr["00080061"]["Value"] == ["MR"]  # ModalitiesInStudy
    assert mr["00201206"]["Value"] == [2] and mr["00201208"]["Value"] == [3]  # series, instances: numbers
    assert mr["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}],
    }
    assert mr["00081190"]["Value"] == [f"{client.base_url}/studies/{a1}"]  # RetrieveURL
    assert "00080005" not in mr, "JSON is UTF-8: no Specific Character Set"
    series = client.search_for_series(study_instance_uid=a1)
    assert _uids(series, "0020000E") == set(archive.mr_series)
    assert all("00100010" not in s for s in series), "the study is named by the URL: no study attributes"
    every_series = client.search_for_series(search_filters={"Modality": "CT"})
    assert {s["0020000D"]["Value"][0] for s in every_series} == {a2, archive.bob}
    assert all("00100020" in s for s in every_series), "/series carries the study's attributes"
    instances = client.search_for_instances(study_instance_uid=a1, series_instance_uid=archive.mr_series[0])
    assert sorted(i["00200013"]["Value"][0] for i in instances) == [1, 2]
    url = instances[0]["00081190"]["Value"][0]
    assert url.startswith(f"{client.base_url}/studies/{a1}/series/{archive.mr_series[0]}/instances/")


def test_matching_as_c_find(http: httpx.Client, archive: Archive) -> None:
    a1, a2 = archive.alice
    cases = [
        ({"PatientName": "山田*"}, {a1, a2}),
        ({"PatientName": "probe^bob"}, {archive.bob}),
        ({"00100010": "Probe*"}, {archive.bob}),  # by tag
        ({"StudyDate": "20231201-20240101"}, {a2}),
        ({"StudyDate": "20240301-"}, {a1, archive.bob}),
        ({"ModalitiesInStudy": "CT"}, {a2, archive.bob}),
        ({"ModalitiesInStudy": "CT,MR"}, {a1, a2, archive.bob}),  # lists of codes: commas too
        ({"ModalitiesInStudy": "CT\\MR"}, {a1, a2, archive.bob}),
        ({"PatientName": "Prob", "fuzzymatching": "true"}, {archive.bob}),
        ({"PatientName": "Prob"}, set()),
        ({"StudyInstanceUID": f"{a1},{archive.bob}"}, {a1, archive.bob}),  # UID lists (PS3.18 8.3.4.1)
    ]
    for params, expected in cases:
        r = http.get("/studies", params=params)
        assert r.status_code == 200, (params, r.text)
        assert r.headers["content-type"].startswith("application/dicom+json")
        assert _uids(r.json()) == expected, params


def test_includefield_limit_offset(http: httpx.Client, archive: Archive) -> None:
    r = http.get("/instances", params={"includefield": "SeriesDescription,00280010", "limit": "2"})
    assert r.status_code == 200
    found = r.json()
    assert len(found) == 2 and "299" in r.headers["warning"]
    assert all("0008103E" in i and i["00280010"]["Value"] == [4] for i in found)
    rest = http.get("/instances", params={"offset": "2", "limit": "10"})
    assert len(rest.json()) == 3 and "warning" not in rest.headers
    every = {i["00080018"]["Value"][0] for i in found + rest.json()}
    assert every == {str(ds.SOPInstanceUID) for ds in archive.instances}
    everything = http.get("/studies", params={"includefield": "all", "PatientID": "PID-B"}).json()
    assert "00080062" in everything[0] and "00201200" in everything[0]  # SOPClassesInStudy, patient counts


def test_no_match_is_an_empty_array(http: httpx.Client, archive: Archive) -> None:
    r = http.get("/studies", params={"PatientID": "NOBODY"})
    assert (r.status_code, r.json()) == (200, [])


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"NoSuchAttribute": "x"}, "not a DICOM attribute"),
        ({"StudyDate": "2024-03-05"}, "YYYYMMDD"),
        ({"limit": "-1"}, "number of matches"),
        ({"fuzzymatching": "yes"}, "true or false"),
        ({"StudyInstanceUID": "1.2.*"}, "wildcards"),
    ],
)
def test_bad_searches_are_400(http: httpx.Client, params: dict[str, str], reason: str) -> None:
    r = http.get("/studies", params=params)
    assert r.status_code == 400 and reason in r.text, r.text


def test_accept_other_than_json_is_406(http: httpx.Client) -> None:
    r = http.get("/studies", headers={"Accept": 'multipart/related; type="application/dicom+xml"'})
    assert r.status_code == 406


def test_a_patient_token_finds_only_its_own_studies(
    services: Services, live_http: str, archive: Archive
) -> None:
    token = issue_token(services, "patient/ImagingStudy.rs", patient=patient_of(services, archive.bob))
    with httpx.Client(base_url=f"{live_http}/dicomweb", headers=bearer(token), timeout=30) as own:
        assert _uids(own.get("/studies").json()) == {archive.bob}
        assert _uids(own.get("/studies", params={"PatientID": "PID-A"}).json()) == set()
        assert _uids(own.get("/series").json()) == {archive.bob}
        r = own.get("/instances", params={"limit": "1"})
        assert len(r.json()) == 1 and "warning" not in r.headers, "its one instance, and no more to ask for"
        assert own.get(f"/studies/{archive.alice[0]}/series").json() == []
        assert own.get(f"/studies/{archive.alice[0]}/instances").json() == []
    with httpx.Client(base_url=f"{live_http}/dicomweb", timeout=30) as anonymous:
        r = anonymous.get("/studies")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    for scope, status in (
        ("system/Patient.rs", 403),
        ("system/ImagingStudy.r", 403),
        ("system/ImagingStudy.s", 200),
    ):
        token = issue_token(services, scope)
        with httpx.Client(base_url=f"{live_http}/dicomweb", headers=bearer(token), timeout=30) as other:
            assert other.get("/studies").status_code == status, scope


def test_a_viewer_on_another_origin_may_search(services: Services, token: str) -> None:
    """FACADE_CORS_ORIGINS: a browser viewer (OHIF) served from another origin."""
    import dataclasses

    from facade.http import build_http_app
    from tests.conftest import serving

    viewer = "https://viewer.example:8443"
    settings = services.settings.model_copy(update={"cors_origins": f" {viewer}/ , https://other.example"})
    app = build_http_app(dataclasses.replace(services, settings=settings))
    with serving(app) as url:
        pre = httpx.options(
            f"{url}/dicomweb/studies",
            headers={"Origin": viewer, "Access-Control-Request-Method": "GET"},
            timeout=10,
        )
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == viewer
        assert "Authorization" in pre.headers["access-control-allow-headers"]
        r = httpx.get(f"{url}/dicomweb/studies", headers={"Origin": viewer, **bearer(token)}, timeout=10)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == viewer
        assert "Warning" in r.headers["access-control-expose-headers"]
        r = httpx.get(f"{url}/dicomweb/studies", headers={"Origin": "https://evil.example", **bearer(token)})
        assert "access-control-allow-origin" not in r.headers
