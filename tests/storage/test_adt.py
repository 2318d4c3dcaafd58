"""ADT in: updates change the one patient images and orders share; A40 merges move studies,
orders and FHIR references to the survivor, with Patient.link both ways; repeated, inverse and
circular merges. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from facade.wiring import Services
from storage.dicom_index.models import PatientRow
from storage.fhir_store.visibility import ALL
from storage.orders.models import RequestedProcedureRow
from tests.archive import patient_id_of, store
from tests.dicom_factory import new_uid
from tests.fhir_schema import assert_valid_r4
from tests.hl7_samples import adt, orm

SYSTEM = "urn:facade:issuer:HOSP"


def send(services: Services, text: str) -> str:
    ack = services.hl7_inbox.receive(text.encode(), "127.0.0.1:1").decode()
    return ack.split("MSA|", 1)[1].split("|", 1)[0] + ("|" + ack.split("ERR|", 1)[1] if "ERR|" in ack else "")


def patient(services: Services, patient_id: str) -> dict[str, Any]:
    with services.db.read() as session:
        fhir_id = session.scalar(
            select(PatientRow.fhir_id).where(
                PatientRow.patient_id == patient_id, PatientRow.id_system == SYSTEM
            )
        )
    assert fhir_id is not None, patient_id
    body = services.search.read("Patient", fhir_id, visibility=ALL).to_json()
    assert_valid_r4(body)
    return body


def order_subject(services: Services, placer: str) -> str:
    with services.db.read() as session:
        fhir_id = session.scalar(
            select(RequestedProcedureRow.fhir_id).where(RequestedProcedureRow.placer == placer)
        )
    assert fhir_id is not None
    body = services.search.read("ServiceRequest", fhir_id, visibility=ALL).to_json()
    return str(body["subject"]["reference"]).split("/")[1]


def test_updates_change_the_patient_and_null_blanks(services: Services) -> None:
    assert send(services, adt("A01", msg_id="1")) == "AA"
    assert patient(services, "PAT-1")["name"][0]["family"] == "Doe"
    assert send(services, adt("A08", msg_id="2", name="Doe-Smith^Jane", birth="", sex="")) == "AA"
    body = patient(services, "PAT-1")
    assert body["name"][0]["family"] == "Doe-Smith" and body["birthDate"] == "1970-01-02"  # empty: unchanged
    assert send(services, adt("A31", msg_id="3", birth='""')) == "AA"
    assert "birthDate" not in patient(services, "PAT-1")  # "": blanked


def test_a_merge_moves_studies_orders_and_references(services: Services, tmp_path: Path) -> None:
    study = new_uid()
    store(
        services,
        tmp_path,
        study_uid=study,
        series_uid=new_uid(),
        patient_id="OLD-1",
        IssuerOfPatientID="HOSP",
    )
    send(services, orm(patient_id="OLD-1", study_uid=study))
    send(services, adt("A04", msg_id="S1", patient_id="NEW-1", name="Doe^Jane"))
    old, new = patient(services, "OLD-1"), patient(services, "NEW-1")
    assert send(services, adt("A40", msg_id="M1", patient_id="NEW-1", prior="OLD-1")) == "AA"
    assert patient_id_of(services, study) == new["id"]
    assert order_subject(services, "PLC-1") == new["id"]
    old_after, new_after = patient(services, "OLD-1"), patient(services, "NEW-1")
    assert old_after["active"] is False
    assert old_after["link"] == [{"other": {"reference": f"Patient/{new['id']}"}, "type": "replaced-by"}]
    assert new_after["link"] == [{"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}]
    # what still comes under the old ID lands on the survivor
    later = new_uid()
    store(
        services,
        tmp_path,
        study_uid=later,
        series_uid=new_uid(),
        patient_id="OLD-1",
        IssuerOfPatientID="HOSP",
    )
    store(
        services,
        tmp_path,
        study_uid=study,
        series_uid=new_uid(),
        patient_id="OLD-1",
        IssuerOfPatientID="HOSP",
    )
    assert patient_id_of(services, later) == new["id"]
    send(services, orm(msg_id="O2", placer="PLC-2", filler="FIL-2", accession="ACC-2", patient_id="OLD-1"))
    assert order_subject(services, "PLC-2") == new["id"]
    # repeated: nothing changes
    assert send(services, adt("A40", msg_id="M2", patient_id="NEW-1", prior="OLD-1")) == "AA"
    assert patient(services, "OLD-1")["meta"]["versionId"] == old_after["meta"]["versionId"]


@pytest.mark.parametrize(
    ("second", "refusal"),
    [
        (adt("A40", msg_id="M2", patient_id="OLD-1", prior="NEW-1"), "AE||MRG^1^1^1|206"),  # inverse
        (adt("A40", msg_id="M2", patient_id="OLD-1", prior="OTHER"), "AE||MRG^1^1^1|206"),  # survivor merged
        (
            adt("A40", msg_id="M2", patient_id="X-1", prior="OLD-1"),
            "AE||MRG^1^1^1|206",
        ),  # prior merged elsewhere
        (adt("A40", msg_id="M2", patient_id="NEW-1", prior="NEW-1"), "AE||MRG^1^1^1|205"),  # itself
    ],
)
def test_merges_that_are_refused(services: Services, second: str, refusal: str) -> None:
    assert send(services, adt("A40", msg_id="M1", patient_id="NEW-1", prior="OLD-1")) == "AA"
    assert send(services, second).startswith(refusal)


def test_a_chain_of_merges_points_at_the_last_survivor(services: Services) -> None:
    send(services, adt("A04", msg_id="1", patient_id="A"))
    send(services, adt("A04", msg_id="2", patient_id="B"))
    send(services, adt("A04", msg_id="3", patient_id="C"))
    assert send(services, adt("A40", msg_id="4", patient_id="B", prior="A")) == "AA"
    assert send(services, adt("A40", msg_id="5", patient_id="C", prior="B")) == "AA"
    c = patient(services, "C")
    for gone in ("A", "B"):
        assert patient(services, gone)["link"] == [
            {"other": {"reference": f"Patient/{c['id']}"}, "type": "replaced-by"}
        ]
    assert sorted(link["type"] for link in c["link"]) == ["replaces", "replaces"]


def test_an_unknown_prior_is_recorded_as_merged(services: Services, tmp_path: Path) -> None:
    assert send(services, adt("A40", msg_id="1", patient_id="NEW-9", prior="NEVER-SEEN")) == "AA"
    study = new_uid()
    store(
        services,
        tmp_path,
        study_uid=study,
        series_uid=new_uid(),
        patient_id="NEVER-SEEN",
        IssuerOfPatientID="HOSP",
    )
    assert patient_id_of(services, study) == patient(services, "NEW-9")["id"]
