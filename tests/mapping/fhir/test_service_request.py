"""A requested procedure -> ServiceRequest: valid R4 (schema and model), every element we map."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from mapping.dicom.facts import local_issuer_system
from mapping.fhir.models import ServiceRequest
from mapping.fhir.service_request import service_request_from_order
from mapping.hl7.er7 import split_message
from mapping.hl7.orders import OrderRules, order_message
from tests.fhir_schema import assert_valid_r4
from tests.hl7_samples import omi, orm

RULES = OrderRules(default_system="urn:x", issuer_system=local_issuer_system("urn:facade:issuer", {}))
ZONE = ZoneInfo("Europe/Paris")


def build(text: str, **kwargs: str) -> dict[str, object]:
    (procedure,) = order_message(split_message(text), charset="", rules=RULES).procedures
    body = service_request_from_order(
        procedure,
        resource_id="sr-1",
        status=kwargs.get("status", "active"),
        subject="pat-1",
        site_zone=ZONE,  # type: ignore[arg-type]
    )
    assert_valid_r4(body)
    ServiceRequest.model_validate(body)
    return body


def test_orm_as_service_request() -> None:
    body = build(orm())
    assert body["status"] == "active" and body["intent"] == "order" and body["priority"] == "routine"
    assert body["subject"] == {"reference": "Patient/pat-1"}
    assert body["occurrenceDateTime"] == "2026-12-03T11:00:00+01:00"  # the site's zone
    assert body["authoredOn"] == "2026-12-03T10:10:00+01:00"
    assert body["code"] == {"coding": [{"code": "CTHEAD", "display": "CT Head"}], "text": "CT Head"}
    assert body["requester"] == {"identifier": {"value": "5678"}, "display": "Otto Order"}
    kinds = [i.get("type", {}).get("coding", [{}])[0].get("code") for i in body["identifier"]]  # type: ignore[attr-defined]
    assert kinds == ["PLAC", "FILL", "ACSN", None]


def test_omi_stat_with_an_accession_issuer_and_revoked() -> None:
    body = build(omi(), status="revoked")
    assert body["status"] == "revoked" and body["priority"] == "stat"
    acsn = [i for i in body["identifier"] if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN"]  # type: ignore[attr-defined]
    assert acsn == [
        {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
            "value": "ACC-2",
            "assigner": {"display": "HOSP"},
        }
    ]


def test_loinc_codes_get_their_system() -> None:
    text = orm().replace("CTHEAD^CT Head^L^", "24725-4^CT Head^LN^")
    body = build(text)
    assert body["code"]["coding"][0]["system"] == "http://loinc.org"  # type: ignore[index]
