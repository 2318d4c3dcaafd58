"""Search values at the edges (calendar ends, zone offsets, limits, control characters) are 400
OperationOutcomes or correct answers over a kept-alive connection, never 500s."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from facade.wiring import Services
from storage.fhir_store.criteria import MAX_LENGTH, MAX_PARAMETERS, MAX_TOTAL_VALUES, MAX_VALUES
from tests.archive import store
from tests.dicom_factory import new_uid
from tests.fhir_schema import assert_valid_r4
from tests.smart import bearer


@pytest.fixture
def fhir(live_http: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{live_http}/fhir", timeout=30, headers=bearer(token))


def refused(r: httpx.Response) -> str:
    assert r.status_code == 400, r.text
    body = r.json()
    assert_valid_r4(body)
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "invalid"
    return str(body["issue"][0]["diagnostics"])


def test_dates_at_the_edges_are_refused_or_answered(fhir: httpx.Client) -> None:
    refused(fhir.get("/ImagingStudy", params={"started": "2020-01-01T00:00:00+25:00"}))
    refused(fhir.get("/ImagingStudy", params={"started": "2020-01-01T00:00:00+01:60"}))
    for value in (
        "9999-12-31T23:59:59Z",
        "9999-12-31",
        "9999",
        "ap9999-12",
        "ap0001",
        "0001-01-01T00:00-05:00",
    ):
        r = fhir.get("/ImagingStudy", params={"started": value})
        assert r.status_code == 200, (value, r.text)
        assert r.json()["resourceType"] == "Bundle"
    assert fhir.get("/metadata").status_code == 200  # the connection is still usable


def test_end_of_calendar_matches_a_study_of_that_day(
    fhir: httpx.Client, services: Services, tmp_path: Path
) -> None:
    store(
        services,
        tmp_path,
        study_uid=new_uid(),
        series_uid=new_uid(),
        StudyDate="99991231",
        StudyTime="235959",
    )
    r = fhir.get("/ImagingStudy", params={"started": "ge9999-12-31", "_summary": "count"})
    assert r.status_code == 200 and r.json()["total"] == 1


def test_limits_are_400_operation_outcomes_that_state_them(fhir: httpx.Client) -> None:
    many = ",".join(f"M{n}" for n in range(1000))
    assert str(MAX_VALUES) in refused(fhir.get("/ImagingStudy", params={"modality": many}))
    assert str(MAX_VALUES) in refused(fhir.post("/ImagingStudy/_search", data={"modality": many}))
    long = "x" * 50_000
    assert str(MAX_LENGTH) in refused(fhir.post("/Patient/_search", data={"name": long}))
    assert str(MAX_LENGTH) in refused(fhir.get("/Patient", params={"name": "x" * (MAX_LENGTH + 1)}))
    pairs = [("modality", "CT")] * (MAX_PARAMETERS + 1)
    assert str(MAX_PARAMETERS) in refused(fhir.get("/ImagingStudy", params=pairs))
    spread = [("modality", ",".join(["CT"] * MAX_VALUES))] * (MAX_TOTAL_VALUES // MAX_VALUES + 1)
    assert str(MAX_TOTAL_VALUES) in refused(fhir.get("/ImagingStudy", params=spread))
    at_limit = [("modality", ",".join(f"M{n}" for n in range(MAX_VALUES)))] * (MAX_TOTAL_VALUES // MAX_VALUES)
    assert fhir.get("/ImagingStudy", params=at_limit).status_code == 200


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\x1f", "\x7f"])
def test_control_characters_are_refused(fhir: httpx.Client, char: str) -> None:
    text = refused(fhir.get("/Patient", params={"name:contains": char}))
    assert "control character" in text
    refused(fhir.get("/Patient", params={"family": f"Te{char}st"}))


@pytest.mark.parametrize("char", ["\u00a0", "\u0085", "\u2028", "\u3000"])
def test_refusals_quoting_unicode_whitespace_are_valid_r4(fhir: httpx.Client, char: str) -> None:
    refused(fhir.get("/Patient", params={"birthdate": f"19{char}80"}))
    refused(fhir.get("/Patient", params={f"x{char}": "1"}))
