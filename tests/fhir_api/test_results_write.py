"""Writing results over FHIR: DiagnosticReport and Observation create (plain and conditional),
update (If-Match), the status lifecycle, Prefer, scopes, and the refusals, over HTTP on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from facade.wiring import Services
from tests.fhir_schema import assert_valid_r4
from tests.smart import bearer, issue_token

WRITER = "system/DiagnosticReport.cruds system/Observation.cruds system/*.rs"


@pytest.fixture
def fhir(live_http: str, services: Services) -> httpx.Client:
    token = issue_token(services, WRITER)
    return httpx.Client(base_url=f"{live_http}/fhir", timeout=30, headers=bearer(token))


def report(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "status": "preliminary",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2", "display": "CT Chest"}]},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": "2026-12-01T10:00:00Z",
        "issued": "2026-12-01T12:00:00Z",
        "conclusion": "No acute findings.",
        **extra,
    }


def observation(value: float, unit: str = "mm", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "410668003", "display": "Length"}]},
        "subject": {"reference": "Patient/p-1"},
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        **extra,
    }


def post(fhir: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return fhir.post(f"/{body['resourceType']}", json=body, headers=headers)


def test_create_answers_201_with_location_etag_and_the_resource(fhir: httpx.Client) -> None:
    r = post(fhir, report(id="ignored"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] != "ignored" and body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/fhir/DiagnosticReport/{body['id']}/_history/1")
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert_valid_r4(body)
    read = fhir.get(f"/DiagnosticReport/{body['id']}").json()
    assert read == body


def test_prefer_minimal_and_operation_outcome(fhir: httpx.Client) -> None:
    r = post(fhir, report(), Prefer="return=minimal")
    assert r.status_code == 201 and r.content == b"" and r.headers["location"]
    r = post(fhir, report(), Prefer="return=OperationOutcome")
    assert r.status_code == 201 and r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["severity"] == "information"


def test_conditional_create(fhir: httpx.Client) -> None:
    ident = {"system": "urn:example:reports", "value": "R-1"}
    first = post(fhir, report(identifier=[ident]), **{"If-None-Exist": "identifier=urn:example:reports|R-1"})
    assert first.status_code == 201
    again = post(fhir, report(identifier=[ident]), **{"If-None-Exist": "identifier=urn:example:reports|R-1"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["meta"]["versionId"] == "1"
    post(fhir, report(identifier=[{"system": "urn:example:reports", "value": "R-2"}]))
    post(fhir, report(identifier=[{"system": "urn:example:reports", "value": "R-2"}]))
    several = post(fhir, report(), **{"If-None-Exist": "identifier=urn:example:reports|R-2"})
    assert several.status_code == 412 and several.json()["resourceType"] == "OperationOutcome"
    bad = post(fhir, report(), **{"If-None-Exist": "nonsense=1"})
    assert bad.status_code == 400


def test_update_with_if_match_history_and_vread(fhir: httpx.Client) -> None:
    created = post(fhir, report()).json()
    rid = created["id"]
    final = {**created, "status": "final"}
    r = fhir.put(f"/DiagnosticReport/{rid}", json=final, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2" and r.headers["etag"] == 'W/"2"'
    stale = fhir.put(
        f"/DiagnosticReport/{rid}", json={**final, "status": "amended"}, headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    history = fhir.get(f"/DiagnosticReport/{rid}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert fhir.get(f"/DiagnosticReport/{rid}/_history/1").json()["status"] == "preliminary"
    same = fhir.put(f"/DiagnosticReport/{rid}", json=final)  # nothing changed: no new version
    assert same.status_code == 200 and same.json()["meta"]["versionId"] == "2"


def test_update_as_create_with_the_clients_id(fhir: httpx.Client) -> None:
    r = fhir.put("/Observation/client-chosen-1", json=observation(12, id="client-chosen-1"))
    assert r.status_code == 201 and r.json()["id"] == "client-chosen-1"
    assert fhir.put("/Observation/other", json=observation(12, id="client-chosen-1")).status_code == 400


def test_the_status_lifecycle(fhir: httpx.Client) -> None:
    rid = post(fhir, report(status="final")).json()["id"]
    url = f"/DiagnosticReport/{rid}"
    back = fhir.put(url, json=report(id=rid, status="preliminary"))
    assert back.status_code == 422 and "final to preliminary" in back.json()["issue"][0]["diagnostics"]
    assert back.json()["issue"][0]["code"] == "business-rule"
    silent = fhir.put(url, json=report(id=rid, status="final", conclusion="Changed."))
    assert silent.status_code == 422
    amended = fhir.put(url, json=report(id=rid, status="amended", conclusion="Changed."))
    assert amended.status_code == 200 and amended.json()["meta"]["versionId"] == "2"
    assert fhir.put(url, json=report(id=rid, status="cancelled")).status_code == 422
    assert fhir.put(url, json=report(id=rid, status="entered-in-error")).status_code == 200
    assert fhir.put(url, json=report(id=rid, status="final")).status_code == 422
    cancelled = post(fhir, report(status="registered")).json()["id"]
    assert (
        fhir.put(f"/DiagnosticReport/{cancelled}", json=report(id=cancelled, status="cancelled")).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b"{not json", 400, "not JSON"),
        (json.dumps(report(status="done")).encode(), 400, "DiagnosticReport.status"),
        (
            json.dumps({k: v for k, v in report().items() if k != "code"}).encode(),
            400,
            "DiagnosticReport.code",
        ),
        (json.dumps(report(colour="blue")).encode(), 400, "DiagnosticReport.colour"),
        (json.dumps(report(result=[{"reference": 5}])).encode(), 400, "DiagnosticReport.result[0].reference"),
        (json.dumps(observation(1)).encode(), 400, "resourceType is 'Observation'"),
        (json.dumps([1, 2]).encode(), 400, "JSON object"),
    ],
)
def test_refusals_name_what_is_wrong(fhir: httpx.Client, body: bytes, status: int, names: str) -> None:
    r = fhir.post("/DiagnosticReport", content=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome" and names in outcome["issue"][0]["diagnostics"]
    assert_valid_r4(outcome)


def test_other_media_types_and_read_only_types(fhir: httpx.Client) -> None:
    r = fhir.post("/DiagnosticReport", content=b"<x/>", headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 415
    r = fhir.post("/ImagingStudy", json={"resourceType": "ImagingStudy", "status": "available"})
    assert r.status_code == 405 and r.json()["resourceType"] == "OperationOutcome"
    assert fhir.post("/Basic", json={"resourceType": "Basic"}).status_code == 404


@pytest.mark.parametrize(
    ("scope", "patient", "status"),
    [
        ("system/DiagnosticReport.rs", None, 403),  # no c
        ("patient/DiagnosticReport.cruds", "p-1", 403),  # a patient-facing app
        ("user/DiagnosticReport.cu?category=RAD", None, 403),  # granular: not for writes
        ("user/DiagnosticReport.write", None, 201),  # SMART v1
        ("user/DiagnosticReport.c", None, 201),
    ],
)
def test_writes_need_c_through_a_user_or_system_scope(
    live_http: str, services: Services, scope: str, patient: str | None, status: int
) -> None:
    token = issue_token(services, scope, patient=patient)
    r = httpx.post(f"{live_http}/fhir/DiagnosticReport", json=report(), headers=bearer(token), timeout=30)
    assert r.status_code == status, r.text


def test_a_patient_sees_only_their_own_results(
    fhir: httpx.Client, live_http: str, services: Services
) -> None:
    mine = post(fhir, report(subject={"reference": "Patient/p-1"})).json()["id"]
    theirs = post(fhir, report(subject={"reference": "Patient/p-2"})).json()["id"]
    token = issue_token(services, "patient/DiagnosticReport.rs", patient="p-1")
    client = httpx.Client(base_url=f"{live_http}/fhir", headers=bearer(token), timeout=30)
    found = client.get("/DiagnosticReport").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [mine]
    assert client.get(f"/DiagnosticReport/{theirs}").status_code == 404


def test_search_results(fhir: httpx.Client) -> None:
    small = post(fhir, observation(4.2, derivedFrom=[{"reference": "ImagingStudy/1.2.3"}])).json()["id"]
    large = post(
        fhir,
        observation(
            12.5,
            partOf=[{"reference": "ImagingStudy/1.2.3"}],
            component=[{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}}],
        ),
    ).json()["id"]
    other_unit = post(fhir, observation(12.5, unit="cm")).json()["id"]
    rep = post(
        fhir,
        report(
            status="final",
            result=[{"reference": f"Observation/{small}"}, {"reference": f"Observation/{large}"}],
            basedOn=[{"reference": "ServiceRequest/sr-1"}],
            identifier=[{"system": "urn:example:reports", "value": "R-9"}],
        ),
    ).json()["id"]
    post(fhir, report(status="preliminary", effectiveDateTime="2025-01-01"))

    def ids(path: str) -> list[str]:
        body = fhir.get(path).raise_for_status().json()
        assert_valid_r4(body)
        return sorted(e["resource"]["id"] for e in body.get("entry", []) if e["search"]["mode"] == "match")

    assert ids("/Observation?value-quantity=gt10") == sorted([large, other_unit])
    assert ids("/Observation?value-quantity=12.5|http://unitsofmeasure.org|mm") == [large]
    assert ids("/Observation?value-quantity=le4.2") == [small]
    assert ids("/Observation?value-quantity=4") == [small]  # 4 means [3.5, 4.5)
    assert ids("/Observation?value-quantity=4.0") == []
    assert ids("/Observation?value-quantity=12.5||cm") == [other_unit]
    assert ids("/Observation?component-code=http://loinc.org|8480-6") == [large]
    assert ids("/Observation?derived-from=ImagingStudy/1.2.3") == [small]
    assert ids("/Observation?part-of=ImagingStudy/1.2.3") == [large]
    assert ids("/DiagnosticReport?status=final") == [rep]
    assert ids("/DiagnosticReport?based-on=ServiceRequest/sr-1") == [rep]
    assert ids("/DiagnosticReport?identifier=R-9") == [rep]
    assert ids(f"/DiagnosticReport?result=Observation/{small}") == [rep]
    assert ids("/DiagnosticReport?date=ge2026-01-01&category=RAD&code=http://loinc.org|24627-2") == sorted(
        [rep]
    )
    assert ids("/DiagnosticReport?issued=2026-12-01") != []
    assert ids("/DiagnosticReport?patient=p-1&_count=50") != []
    assert fhir.get("/Observation?value-quantity=abc").status_code == 400

    body = fhir.get(f"/DiagnosticReport?_id={rep}&_include=DiagnosticReport:result").json()
    included = sorted(e["resource"]["id"] for e in body["entry"] if e["search"]["mode"] == "include")
    assert included == sorted([small, large])
    body = fhir.get(f"/Observation?_id={small}&_revinclude=DiagnosticReport:result").json()
    assert [e["resource"]["id"] for e in body["entry"] if e["search"]["mode"] == "include"] == [rep]
    assert fhir.get("/Observation?_revinclude=DiagnosticReport:subject").status_code == 400


def test_the_capability_statement_says_what_is_writable(fhir: httpx.Client) -> None:
    cap = fhir.get("/metadata").json()
    by_type = {r["type"]: r for r in cap["rest"][0]["resource"]}
    report_caps = by_type["DiagnosticReport"]
    assert {"create", "update"} <= {i["code"] for i in report_caps["interaction"]}
    assert report_caps["conditionalCreate"] is True and report_caps["updateCreate"] is True
    assert "DiagnosticReport:result" in report_caps["searchInclude"]
    assert "DiagnosticReport:result" in by_type["Observation"]["searchRevInclude"]
    names = {p["name"] for p in by_type["Observation"]["searchParam"]}
    assert {"value-quantity", "component-code", "derived-from", "part-of"} <= names
    assert "create" not in {i["code"] for i in by_type["ImagingStudy"]["interaction"]}


def test_fhirclient_writes_and_updates_a_report(live_http: str, services: Services) -> None:
    """SMART's Python client, as a reporting app would use it: create, read, update to final."""
    from fhirclient.models.diagnosticreport import DiagnosticReport
    from fhirclient.server import FHIRServer

    server = FHIRServer(None, base_uri=f"{live_http}/fhir")
    server.session.headers.update(bearer(issue_token(services, WRITER)))
    created = DiagnosticReport(report()).create(server)
    assert created is not None and created["status"] == "preliminary"
    fetched = DiagnosticReport.read(created["id"], server)
    assert fetched.conclusion == "No acute findings." and fetched.subject.reference == "Patient/p-1"
    fetched.status = "final"
    fetched.conclusion = "No acute findings. Signed."
    updated = fetched.update(server)
    assert updated is not None and updated["meta"]["versionId"] == "2" and updated["status"] == "final"


def test_decimals_keep_their_precision(fhir: httpx.Client) -> None:
    """0.010 is not 0.01 (R4 decimal): what is written is what is read, in search results too."""
    text = json.dumps(observation(1)).replace('"value": 1,', '"value": 0.010,').encode()
    assert b'"value": 0.010,' in text
    r = fhir.post("/Observation", content=text, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201, r.text
    assert b'"value":0.010,' in r.content
    rid = r.json()["id"]
    assert b'"value":0.010,' in fhir.get(f"/Observation/{rid}").content
    assert b'"value":0.010,' in fhir.get("/Observation", params={"value-quantity": "0.010"}).content
    big = json.dumps(observation(1)).replace('"value": 1,', '"value": 1.6e-005,').encode()
    r = fhir.post("/Observation", content=big, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201 and r.json()["valueQuantity"]["value"] == 1.6e-05


def test_a_report_made_final_over_fhir_goes_out_as_oru(
    fhir: httpx.Client, services: Services, mllp_port: int
) -> None:
    """A reporting app writes a preliminary report for an order, then makes it final, then
    amends it: the RIS (a real MLLP receiver) gets ORU^R01 F, then C, with the order's numbers;
    the preliminary version sends nothing."""
    from hl7_interface.mllp_client import MllpClient
    from mapping.hl7.oru import OruProfile
    from tests.hl7_peer import Receiver, free_port
    from tests.hl7_samples import orm

    assert b"MSA|AA|" in services.hl7_inbox.receive(orm().encode(), "127.0.0.1:1")
    order = fhir.get("/ServiceRequest", params={"identifier": "PLC-1"}).json()["entry"][0]["resource"]
    port = free_port()
    services.outbox.add_destination("RIS", "127.0.0.1", port, OruProfile())
    body = report(subject=order["subject"], basedOn=[{"reference": f"ServiceRequest/{order['id']}"}])
    created = post(fhir, body).json()
    assert services.outbox.count("pending") == 0  # preliminary: nothing to send
    final = fhir.put(f"/DiagnosticReport/{created['id']}", json={**created, "status": "final"})
    assert final.status_code == 200
    amended = {**final.json(), "status": "amended", "conclusion": "Addendum: small effusion."}
    assert fhir.put(f"/DiagnosticReport/{created['id']}", json=amended).status_code == 200
    assert services.outbox.count("pending") == 2
    receiver = Receiver(port).start()
    client = MllpClient(connect_timeout=2, ack_timeout=5)
    try:
        services.outbox.deliver_due(client)
        got = receiver.wait_for(2)
    finally:
        client.close()
        receiver.stop()
    assert [m.status for m in got] == ["F", "C"]
    assert all("PLC-1" in m.raw and "FIL-1" in m.raw and "ACC-1" in m.raw for m in got)
    assert "Addendum: small effusion." in got[1].raw and got[0].patient == "PAT-1"


def test_writes_are_audited_as_create_and_update(fhir: httpx.Client, services: Services) -> None:
    from sqlalchemy import select

    from storage.audit.models import AuditEventRow

    rid = post(fhir, report()).json()["id"]
    fhir.put(f"/DiagnosticReport/{rid}", json=report(id=rid, status="final"))
    assert fhir.post("/DiagnosticReport", content=b"{").status_code == 400
    services.audit.flush()
    with services.db.read() as session:
        rows = [
            (r.action, r.method, r.path, r.status, r.outcome)
            for r in session.scalars(select(AuditEventRow).order_by(AuditEventRow.id))
        ]
    assert rows == [
        ("create", "POST", "/fhir/DiagnosticReport", 201, "allowed"),
        ("update", "PUT", f"/fhir/DiagnosticReport/{rid}", 200, "allowed"),
        ("create", "POST", "/fhir/DiagnosticReport", 400, "refused"),
    ]
