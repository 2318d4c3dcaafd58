"""Receiving HL7 orders (the use case behind the MLLP listener), on SQLite and PostgreSQL: AA only
with every effect committed, AE/AR with ERR, every message and ACK kept, resends answered from
the store and applied once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from facade.settings import Settings
from facade.wiring import Services
from mapping.hl7.er7 import split_message
from storage.audit.models import AuditEventRow
from storage.fhir_store.visibility import ALL
from storage.hl7_inbox.models import Hl7MessageRow
from storage.orders.models import RequestedProcedureRow, ScheduledStepRow
from tests.archive import patient_id_of, store
from tests.dicom_factory import new_uid
from tests.fhir_schema import assert_valid_r4
from tests.hl7_samples import omi, orm


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worklist_stations": {"CT": ["CT1"]}})


def receive(services: Services, text: str, encoding: str = "utf-8") -> dict[str, Any]:
    """Send one message; the ACK read back: MSA-1, MSA-2, ERR location / code."""
    ack = services.hl7_inbox.receive(text.encode(encoding), "127.0.0.1:50000")
    message = split_message(ack.decode(encoding))
    msa, err = message.first("MSA"), message.first("ERR")
    assert msa is not None
    out: dict[str, Any] = {"raw": ack, "code": msa.value(1), "control_id": msa.value(2), "text": msa.value(3)}
    if err is not None:
        version = message.msh.value(12)
        if version >= "2.5":
            out["where"] = "^".join(err.value(2, c) for c in (1, 2, 3))
            out["error"] = err.value(3)
        else:
            out["where"] = "^".join(err.value(1, c) for c in (1, 2, 3))
            out["error"] = err.value(1, 4, 1)
    return out


def rows(services: Services, model: Any) -> list[Any]:
    with services.db.read() as session:
        return list(session.scalars(select(model)))


def service_request(services: Services, **where: str) -> dict[str, Any]:
    (row,) = [
        r for r in rows(services, RequestedProcedureRow) if all(getattr(r, k) == v for k, v in where.items())
    ]
    body = services.search.read("ServiceRequest", row.fhir_id, visibility=ALL).to_json()
    assert_valid_r4(body)
    return body


def test_a_new_order_is_acknowledged_once_committed(services: Services) -> None:
    ack = receive(services, orm())
    assert (ack["code"], ack["control_id"]) == ("AA", "MSG0001")
    body = service_request(services, placer="PLC-1")
    assert body["status"] == "active" and body["intent"] == "order" and body["priority"] == "routine"
    values = {
        i.get("type", {}).get("coding", [{}])[0].get("code", i.get("system")): i["value"]
        for i in body["identifier"]
    }
    assert values == {
        "PLAC": "PLC-1",
        "FILL": "FIL-1",
        "ACSN": "ACC-1",
        "urn:dicom:uid": "urn:oid:1.2.826.0.1.3680043.10.1.1",
    }
    assert body["code"]["coding"][0]["code"] == "CTHEAD" and body["requester"]["display"] == "Otto Order"
    assert body["occurrenceDateTime"].startswith("2026-12-03T11:00:00")
    patient = services.search.read(
        "Patient", body["subject"]["reference"].split("/")[1], visibility=ALL
    ).to_json()
    assert patient["name"][0]["family"] == "Doe" and patient["birthDate"] == "1970-01-02"
    (step,) = rows(services, ScheduledStepRow)
    assert (step.sps_id, step.status, step.station_aets, step.modality) == ("SPS-1", "SCHEDULED", "CT1", "CT")


def test_a_resend_gets_the_same_ack_and_is_not_applied_twice(services: Services) -> None:
    first = receive(services, orm())
    again = receive(services, orm())
    assert again["raw"] == first["raw"]
    assert len(rows(services, RequestedProcedureRow)) == 1 and len(rows(services, Hl7MessageRow)) == 1


def test_the_same_message_twice_at_once_applies_once(services: Services) -> None:
    acks: list[bytes] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        acks.append(services.hl7_inbox.receive(omi().encode(), "127.0.0.1:1"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(acks) == 4 and len(set(acks)) == 1 and b"MSA|AA|OMI0001" in acks[0]
    assert len(rows(services, RequestedProcedureRow)) == 1 and len(rows(services, ScheduledStepRow)) == 2


def test_a_new_order_is_a_few_statements_in_one_transaction(services: Services) -> None:
    """What an order costs is mostly its round trips to the database: the message kept first (its
    insert is the resend check), the patient read and made, the order looked up, the order and
    its step, the studies it explains, the ServiceRequest with its search rows. No read-backs."""
    receive(services, orm(msg_id="WARM", placer="P0", filler="F0", accession="A0", patient_id="PID0"))
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        assert receive(services, orm(msg_id="M9", placer="P9", filler="F9", accession="A9"))["code"] == "AA"
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    kinds = [s for s in statements if s not in ("BEGIN", "PRAGMA")]  # SQLite's transaction start
    assert kinds.count("SELECT") == 2, statements  # the patient, the order
    assert len(kinds) <= 12, " ".join(statements)


def test_a_new_order_waits_for_five_round_trips_on_postgresql(services: Services) -> None:
    """On PostgreSQL the writes whose results nobody reads (the step, the touch of the studies,
    the ServiceRequest with its version and search rows) go together in one pipeline, and so do
    the patient's and the order's lookups; the message's claim (with the BEGIN), the patient
    made and the order made each wait for their answer; then the commit."""
    if services.db.dialect != "postgresql":
        pytest.skip("SQLite runs in process: no round trips")
    from psycopg import pq

    receive(services, orm(msg_id="WARM", placer="P0", filler="F0", accession="A0", patient_id="PID0"))
    trips: list[list[str]] = []

    def count(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        kind = statement.split(None, 1)[0].upper()
        pipelined = cursor.connection.pgconn.pipeline_status != pq.PipelineStatus.OFF
        if pipelined and trips and trips[-1][0] == "pipeline":
            trips[-1].append(kind)
        else:
            trips.append(["pipeline", kind] if pipelined else [kind])

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        assert receive(services, orm(msg_id="M9", placer="P9", filler="F9", accession="A9"))["code"] == "AA"
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    assert [t[0] for t in trips] == ["INSERT", "pipeline", "INSERT", "INSERT", "pipeline"], trips
    assert trips[1][1:] == ["SELECT", "SELECT"]  # the patient, the order
    assert trips[-1][1:3] == ["INSERT", "UPDATE"]  # the step, the studies; then the ServiceRequest's


def test_omi_steps_and_stat_priority(services: Services) -> None:
    assert receive(services, omi())["code"] == "AA"
    body = service_request(services, placer="PLC-2")
    assert body["priority"] == "stat"
    steps = sorted((s.sps_id, s.modality, s.station_aets) for s in rows(services, ScheduledStepRow))
    assert steps == [("SPS-2a", "MR", "MR1\\MR2"), ("SPS-2b", "CT", "CT1")]


def test_a_cancel_of_an_unknown_order_is_an_ae_and_is_kept(services: Services) -> None:
    ack = receive(services, orm("CA", msg_id="C1", placer="NONE", filler="NONE", accession="NONE"))
    assert (ack["code"], ack["where"], ack["error"]) == ("AE", "ORC^1^2", "204")
    (kept,) = rows(services, Hl7MessageRow)
    assert (kept.ack_code, kept.control_id, kept.message_type) == ("AE", "C1", "ORM^O01")
    assert (
        receive(services, orm("CA", msg_id="C1", placer="NONE", filler="NONE", accession="NONE"))["raw"]
        == ack["raw"]
    )


def test_change_keeps_the_study_uid_then_cancel(services: Services) -> None:
    receive(services, orm(study_uid=None))
    before = service_request(services, placer="PLC-1")
    ack = receive(services, orm("XO", msg_id="M2", study_uid=None, modality="MR", start="20261204090000"))
    assert ack["code"] == "AA"
    after = service_request(services, placer="PLC-1")
    uid = [i for i in after["identifier"] if i.get("system") == "urn:dicom:uid"]
    assert uid == [i for i in before["identifier"] if i.get("system") == "urn:dicom:uid"] and uid
    assert after["meta"]["versionId"] == "2" and after["occurrenceDateTime"].startswith("2026-12-04T09:00")
    (step,) = rows(services, ScheduledStepRow)
    assert step.modality == "MR" and step.status == "SCHEDULED"
    assert receive(services, orm("CA", msg_id="M3", order_status="CA"))["code"] == "AA"
    assert service_request(services, placer="PLC-1")["status"] == "revoked"
    assert [s.status for s in rows(services, ScheduledStepRow)] == ["CANCELED"]
    refused = receive(services, orm("XO", msg_id="M4"))
    assert (refused["code"], refused["where"], refused["error"]) == ("AE", "ORC^1^1", "206")


def test_a_started_procedure_is_discontinued_not_cancelled(services: Services) -> None:
    receive(services, orm())
    assert receive(services, orm("SC", msg_id="M2", order_status="IP"))["code"] == "AA"
    assert [s.status for s in rows(services, ScheduledStepRow)] == ["STARTED"]
    refused = receive(services, orm("CA", msg_id="M3", order_status="CA"))
    assert (refused["code"], refused["error"]) == ("AE", "206")
    assert [s.status for s in rows(services, ScheduledStepRow)] == ["STARTED"]
    assert receive(services, orm("DC", msg_id="M4", order_status="CA"))["code"] == "AA"
    assert [s.status for s in rows(services, ScheduledStepRow)] == ["DISCONTINUED"]
    assert service_request(services, placer="PLC-1")["status"] == "revoked"


def test_a_message_applies_whole_or_not_at_all(services: Services) -> None:
    text = orm() + "ORC|CA|UNKNOWN^RIS|||CA\r"
    ack = receive(services, text)
    assert (ack["code"], ack["where"]) == ("AE", "ORC^2^2")
    assert rows(services, RequestedProcedureRow) == [] and rows(services, ScheduledStepRow) == []


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"this is not HL7", "100"),
        (orm().replace("2.3.1", "2.9").encode(), "203"),
        (orm().replace("ORM^O01", "ORR^O02").encode(), "200"),
        (orm().replace("ORM^O01", "ADT^A02").encode(), "201"),
        (orm(name="M\u00fcller^Hans", charset="UNICODE UTF-8").encode("latin-1"), "102"),
    ],
)
def test_what_we_do_not_take_is_rejected_and_kept(services: Services, raw: bytes, error: str) -> None:
    ack = services.hl7_inbox.receive(raw, "127.0.0.1:1")
    message = split_message(ack.decode("latin-1"))
    msa, err = message.first("MSA"), message.first("ERR")
    assert msa is not None and err is not None and msa.value(1) == "AR"
    assert error in (err.value(3), err.value(1, 4, 1))
    with services.db.read() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Hl7MessageRow).where(Hl7MessageRow.ack_code == "AR")
            )
            == 1
        )


def test_latin1_names_arrive_decoded(services: Services) -> None:
    assert receive(services, orm(name="M\u00fcller^J\u00fcrgen", charset="8859/1"), "latin-1")["code"] == "AA"
    body = service_request(services, placer="PLC-1")
    patient = services.search.read(
        "Patient", body["subject"]["reference"].split("/")[1], visibility=ALL
    ).to_json()
    assert patient["name"][0]["family"] == "M\u00fcller"


def test_the_order_and_the_images_share_the_patient(services: Services, tmp_path: Path) -> None:
    receive(services, orm())
    study = new_uid()
    store(
        services,
        tmp_path,
        study_uid=study,
        series_uid=new_uid(),
        patient_id="PAT-1",
        IssuerOfPatientID="HOSP",
    )
    body = service_request(services, placer="PLC-1")
    assert body["subject"]["reference"] == f"Patient/{patient_id_of(services, study)}"


def test_senders_outside_the_allow_list_are_rejected(settings: Settings, tmp_path: Path) -> None:
    from facade.wiring import build_services

    restricted = build_services(settings.model_copy(update={"hl7_allowed_senders": "OTHER^HOSP"}))
    try:
        ack = receive(restricted, orm())
        assert ack["code"] == "AR" and rows(restricted, RequestedProcedureRow) == []
        allowed = build_services(
            settings.model_copy(update={"hl7_allowed_senders": "RIS^HOSP"}), migrate=False
        )
        try:
            assert receive(allowed, orm(msg_id="M9"))["code"] == "AA"
        finally:
            allowed.close()
    finally:
        restricted.close()


def test_every_message_is_audited_without_content(services: Services) -> None:
    receive(services, orm())
    receive(services, orm())  # a resend: audited again, with the answer it got
    receive(services, orm("CA", msg_id="C9", placer="NONE", filler="NONE", accession="NONE"))
    services.hl7_inbox.receive(b"garbage", "127.0.0.1:9")
    services.audit.flush()
    with services.db.read() as session:
        events = session.scalars(
            select(AuditEventRow).where(AuditEventRow.source == "mllp").order_by(AuditEventRow.id)
        )
        seen = [(e.action, e.outcome, e.client_id, e.peer) for e in events]
    assert seen == [
        ("hl7 O01", "accepted", "RIS^HOSP", "127.0.0.1:50000"),
        ("hl7 O01", "accepted", "RIS^HOSP", "127.0.0.1:50000"),
        ("hl7 O01", "error", "RIS^HOSP", "127.0.0.1:50000"),
        ("hl7", "rejected", None, "127.0.0.1:9"),
    ]
