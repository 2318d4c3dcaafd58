"""Study <-> order: an ImagingStudy whose Study Instance UID or Accession Number matches an order
points at its ServiceRequest (basedOn, with procedureCode / referrer from the order where the
DICOM header has none), whichever arrived first; unmatched studies are listed by
`basedon:missing=true`. Over the FHIR API, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from facade.wiring import Services
from storage.orders.models import RequestedProcedureRow
from tests.archive import store
from tests.dicom_factory import new_uid
from tests.fhir_schema import assert_valid_r4
from tests.hl7_samples import orm
from tests.smart import bearer


@pytest.fixture
def fhir(live_http: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{live_http}/fhir", timeout=30, headers=bearer(token))


def order(services: Services, **kwargs: Any) -> str:
    """Send an ORM; the id of the ServiceRequest it made."""
    ack = services.hl7_inbox.receive(orm(**kwargs).encode(), "127.0.0.1:1")
    assert b"MSA|AA|" in ack, ack
    placer = kwargs.get("placer", "PLC-1")
    with services.db.read() as session:
        return str(session.scalars(select(RequestedProcedureRow.fhir_id).filter_by(placer=placer)).one())


def study(fhir: httpx.Client, uid: str) -> dict[str, Any]:
    body = fhir.get(f"/ImagingStudy/{uid}").raise_for_status().json()
    assert_valid_r4(body)
    return body


def test_images_after_the_order_by_accession(services: Services, fhir: httpx.Client, tmp_path: Path) -> None:
    request = order(services, study_uid=None)  # the modality made its own Study Instance UID
    uid = new_uid()
    store(
        services, tmp_path, study_uid=uid, series_uid=new_uid(), patient_id="PAT-1", AccessionNumber="ACC-1"
    )
    body = study(fhir, uid)
    assert body["basedOn"] == [{"reference": f"ServiceRequest/{request}"}]
    assert body["procedureCode"][0]["coding"][0]["code"] == "CTHEAD"  # the header has none
    assert body["referrer"]["display"] == "Rita Referrer"


def test_the_order_after_the_images_by_study_uid(
    services: Services, fhir: httpx.Client, tmp_path: Path
) -> None:
    uid = new_uid()
    store(
        services,
        tmp_path,
        study_uid=uid,
        series_uid=new_uid(),
        patient_id="PAT-1",
        ReferringPhysicianName="Own^Doc",
    )
    services.publisher.pending()
    assert "basedOn" not in study(fhir, uid)
    request = order(services, study_uid=uid, accession="OTHER")
    body = study(fhir, uid)
    assert body["basedOn"] == [{"reference": f"ServiceRequest/{request}"}]
    assert body["referrer"]["display"] == "Doc Own"  # DICOM's own referrer stays
    services.publisher.pending()
    assert study(fhir, uid)["basedOn"] == body["basedOn"]  # and it is what gets published


def test_search_by_order_and_without_one(services: Services, fhir: httpx.Client, tmp_path: Path) -> None:
    request = order(services)
    linked, alone = new_uid(), new_uid()
    store(services, tmp_path, study_uid=linked, series_uid=new_uid(), AccessionNumber="ACC-1")
    store(services, tmp_path, study_uid=alone, series_uid=new_uid(), AccessionNumber="ACC-X")

    def ids(params: dict[str, str]) -> list[str]:
        bundle = fhir.get("/ImagingStudy", params=params).raise_for_status().json()
        return sorted(e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match")

    assert ids({"basedon": f"ServiceRequest/{request}"}) == [linked]
    assert ids({"basedon:missing": "true"}) == [alone]
    assert ids({"basedon:missing": "false"}) == [linked]
    included = fhir.get("/ImagingStudy", params={"_id": linked, "_include": "ImagingStudy:basedon"}).json()
    assert {e["resource"]["resourceType"] for e in included["entry"]} == {"ImagingStudy", "ServiceRequest"}
