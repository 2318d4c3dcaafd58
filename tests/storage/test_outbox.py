"""ORU^R01 out through the outbox, to a real MLLP receiver (a plain socket server) that is down,
then up: every final report arrives, in order per patient, acknowledged once; AE makes a dead
letter with the receiver's reason, `retry` sends it again; SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from facade.wiring import Services, build_services
from hl7_interface.mllp_client import MllpClient
from mapping.hl7.oru import OruProfile
from storage.db import Database, make_engine
from storage.outbox.store import OutboxStore
from storage.usecases.outbox import OutboxConfig, ReportOutbox
from tests.conftest import Clock
from tests.hl7_peer import Received, Receiver, ack, free_port

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [{"system": "urn:oid:1.2.3", "value": f"PAT-{n}"}],
        "name": [{"family": f"Test{n}", "given": ["Pat"]}],
    }


def order(n: int) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": f"sr{n}",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/p{n}"},
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "value": f"PLC-{n}"},
            {"type": {"coding": [{"system": V2_0203, "code": "FILL"}]}, "value": f"FIL-{n}"},
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": f"ACC-{n}"},
        ],
    }


def study(n: int) -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "id": f"st{n}",
        "status": "available",
        "subject": {"reference": f"Patient/p{n}"},
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:1.2.826.0.1.3680043.10.9.{n}"}],
    }


def report(n: int, status: str, text: str = "No acute finding.") -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": f"r{n}",
        "status": status,
        "code": {"text": "XR chest"},
        "subject": {"reference": f"Patient/p{n}"},
        "basedOn": [{"reference": f"ServiceRequest/sr{n}"}],
        "imagingStudy": [{"reference": f"ImagingStudy/st{n}"}],
        "conclusion": text,
        "presentedForm": [{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}],
    }


def write(services: Services, before: dict[str, Any] | None, after: dict[str, Any], n: int) -> int:
    """What the report write does: store the report (and, here, what it refers to), then call
    the outbox in the same transaction."""
    now = datetime.now(UTC)
    with services.db.write() as session:
        for resource in (patient(n), order(n), study(n), after):
            services.store.put(session, resource, now=now)
        return services.outbox.report_changed(session, before, after, now)


def drain(outbox: ReportOutbox, client: MllpClient, clock: Clock, rounds: int = 50) -> None:
    """Deliver until nothing is pending, moving the clock past each backoff."""
    for _ in range(rounds):
        outbox.deliver_due(client)
        if outbox.count("pending") == 0:
            return
        clock.advance(600)
    raise AssertionError("messages still pending")


def test_down_then_up_every_report_arrives_in_order_once(services: Services, clock: Clock) -> None:
    port = free_port()
    services.outbox.add_destination("RIS", "127.0.0.1", port, OruProfile())
    sequence = [("preliminary", 0), ("final", 1), ("amended", 1), ("corrected", 1)]
    for n in (1, 2, 3):
        before = None
        for version, (status, expected) in enumerate(sequence):
            after = report(n, status, f"Report {n} version {version}")
            assert write(services, before, after, n) == expected
            before = after
    assert write(services, before, before, 3) == 0  # stored again unchanged: nothing to send
    assert services.outbox.count("pending") == 9

    client = MllpClient(connect_timeout=2, ack_timeout=5)
    try:
        counts = services.outbox.deliver_due(client)  # the receiver is down
        assert counts.sent == 0 and counts.retried >= 1 and services.outbox.count("pending") == 9
        [failed] = [e for e in services.outbox.list("pending") if e.attempts]
        assert failed.last_error and "ConnectionRefusedError" in failed.last_error
        assert services.outbox.deliver_due(client).retried == 0  # backing off: not due yet

        receiver = Receiver(port).start()
        try:
            drain(services.outbox, client, clock)
            got = receiver.wait_for(9)
        finally:
            receiver.stop()
    finally:
        client.close()
    assert len(got) == 9 and len({m.control_id for m in got}) == 9  # each once
    for n in (1, 2, 3):
        mine = [m for m in got if m.patient == f"PAT-{n}"]
        assert [m.status for m in mine] == ["F", "C", "C"]  # in order per patient
        assert [m.raw.count(f"version {v}") > 0 for m, v in zip(mine, (1, 2, 3), strict=True)] == [True] * 3
        assert f"PLC-{n}" in mine[0].raw and f"1.2.826.0.1.3680043.10.9.{n}" in mine[0].raw
    sent = services.outbox.list("sent")
    assert len(sent) == 9 and {e.ack_code for e in sent} == {"AA"}
    assert {e.control_id for e in sent} == {m.control_id for m in got}


def test_a_refusal_is_a_dead_letter_and_retry_sends_it_again(services: Services, clock: Clock) -> None:
    refuse = {"on": True}

    def answer(message: Received) -> bytes:
        if refuse["on"]:
            return ack(message.control_id, "AE", "no order matches OBR-3")
        return ack(message.control_id)

    receiver = Receiver(answer=answer).start()
    client = MllpClient()
    try:
        services.outbox.add_destination("RIS", "127.0.0.1", receiver.port, OruProfile(version="2.3.1"))
        write(services, None, report(1, "final"), 1)
        counts = services.outbox.deliver_due(client)
        assert (counts.sent, counts.dead) == (0, 1)
        [dead] = services.outbox.list("dead")
        assert dead.ack_code == "AE" and dead.last_error == "AE: 204 no order matches OBR-3"
        refuse["on"] = False
        assert services.outbox.retry([dead.pk]) == 1 and services.outbox.retry([dead.pk]) == 0
        assert services.outbox.deliver_due(client).sent == 1
        assert receiver.control_ids() == [dead.control_id, dead.control_id]  # the same MSH-10
        assert "|2.3.1" in receiver.received[0].raw
    finally:
        client.close()
        receiver.stop()
    [sent] = services.outbox.list("sent")
    assert sent.pk == dead.pk and sent.ack_code == "AA"


def test_a_lost_ack_is_sent_again_and_then_only_duplicates(services: Services, clock: Clock) -> None:
    lost: set[str] = set()

    def answer(message: Received) -> bytes | None:
        if message.control_id not in lost:
            lost.add(message.control_id)
            return None  # received, but the connection drops before the ACK
        return ack(message.control_id)

    receiver = Receiver(answer=answer).start()
    client = MllpClient()
    try:
        services.outbox.add_destination("RIS", "127.0.0.1", receiver.port, OruProfile())
        write(services, None, report(1, "final"), 1)
        write(services, None, report(2, "final"), 2)
        drain(services.outbox, client, clock)
    finally:
        client.close()
        receiver.stop()
    ids = receiver.control_ids()
    assert len(ids) == 4 and len(set(ids)) == 2  # each twice: once unacknowledged, once acknowledged
    assert services.outbox.count("sent") == 2


def test_too_many_tries_make_a_dead_letter(services: Services, database_url: str, clock: Clock) -> None:
    db = Database(make_engine(database_url))
    outbox = ReportOutbox(
        db, services.store, OutboxConfig(backoff_base=0.5, backoff_max=2, max_attempts=3), now=clock
    )
    port = free_port()
    try:
        outbox.add_destination("DOWN", "127.0.0.1", port, OruProfile())
        with db.write() as session:
            for resource in (patient(1), report(1, "final")):
                services.store.put(session, resource, now=clock())
            assert outbox.report_changed(session, None, report(1, "final"), clock()) == 1
        client = MllpClient(connect_timeout=1)
        for backoff in (0.5, 1.0, None):  # base, doubled, then given up
            before = clock()
            outbox.deliver_due(client)
            took = (clock() - before).total_seconds()
            [entry] = outbox.list()
            if backoff is not None:
                wait = (entry.next_attempt_at - before).total_seconds()
                assert backoff <= wait <= backoff + took
            clock.advance(5)
        [dead] = outbox.list("dead")
        assert dead.attempts == 3 and dead.last_error and dead.last_error.startswith("gave up after 3 tries")
    finally:
        db.dispose()


def test_what_enqueues_and_what_does_not(services: Services) -> None:
    assert write(services, None, report(1, "final"), 1) == 0  # no destination
    services.outbox.add_destination("A", "127.0.0.1", 2575, OruProfile())
    services.outbox.add_destination("B", "127.0.0.1", 2576, OruProfile(text="ft", charset="UNICODE UTF-8"))
    assert write(services, None, report(2, "registered"), 2) == 0
    assert write(services, report(2, "registered"), report(2, "final"), 2) == 2
    assert write(services, report(2, "final"), report(2, "final"), 2) == 0
    assert write(services, report(2, "final"), report(2, "final", "changed"), 2) == 2
    assert write(services, report(2, "final"), report(2, "entered-in-error"), 2) == 0
    entries = services.outbox.list("pending")
    assert len(entries) == 4 and {e.destination for e in entries} == {"A", "B"}
    assert services.outbox.remove_destination("B")
    dead = services.outbox.list("dead")
    assert len(dead) == 2 and {e.last_error for e in dead} == {"destination removed"}


def test_only_destinations_that_receive_results_get_them(services: Services) -> None:
    """A destination registered for application ACKs only (a RIS that sends orders in enhanced
    mode and takes its results elsewhere) gets no ORU^R01; a profile stored before destinations
    chose receives both."""
    services.outbox.add_destination("RIS", "127.0.0.1", 2575, OruProfile(receives=("ack",)))
    services.outbox.add_destination("EHR", "127.0.0.1", 2576, OruProfile(receives=("oru",)))
    assert write(services, None, report(1, "final"), 1) == 1
    assert {e.destination for e in services.outbox.list("pending")} == {"EHR"}
    assert OruProfile.from_json({"version": "2.5.1"}).receives == ("oru", "ack")
    assert "receives" in (OruProfile(receives=()).problem() or "")
    assert "receives" in (OruProfile(receives=("oru", "adt")).problem() or "")


def test_configured_destinations_are_synced_at_start(services: Services) -> None:
    settings = services.settings.model_copy(
        update={"oru_destinations": "ris.example.org:2575, EHR=10.0.0.9:6661"}
    )
    built = build_services(settings)
    try:
        assert [(d.name, d.host, d.port) for d in built.outbox.destinations()] == [
            ("EHR", "10.0.0.9", 6661),
            ("ris.example.org:2575", "ris.example.org", 2575),
        ]
    finally:
        built.close()
    moved = build_services(settings.model_copy(update={"oru_destinations": "EHR=10.0.0.10:6661"}))
    try:
        assert {d.name: d.host for d in moved.outbox.destinations()}["EHR"] == "10.0.0.10"
    finally:
        moved.close()


def test_two_claimers_never_claim_the_same_message(services: Services, database_url: str) -> None:
    """Two processes' workers on one database (two engines): PostgreSQL's SKIP LOCKED lets them
    claim side by side; SQLite's write lock serializes them. No message is claimed twice."""
    services.outbox.add_destination("RIS", "127.0.0.1", 2575, OruProfile())
    now = datetime.now(UTC)
    with services.db.write() as session:
        for n in range(300):
            services.store.put(session, patient(n), now=now)
            services.outbox.report_changed(session, None, report(n, "final"), now)
    databases = [Database(make_engine(database_url)) for _ in range(2)]
    claimed: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def claim(i: int) -> None:
        store = OutboxStore(databases[i])
        start.wait()
        later = datetime.now(UTC) + timedelta(seconds=1)
        while batch := store.claim(later, later + timedelta(minutes=5), 7):
            claimed[i] += [m.pk for m in batch]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for db in databases:
            db.dispose()
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 300
    if services.db.dialect == "postgresql":
        assert claimed[0] and claimed[1]  # side by side, not one after the other


def test_two_workers_deliver_each_message_once(services: Services, database_url: str) -> None:
    receiver = Receiver().start()
    services.outbox.add_destination("RIS", "127.0.0.1", receiver.port, OruProfile())
    now = datetime.now(UTC)
    with services.db.write() as session:
        for n in range(60):
            services.store.put(session, patient(n % 10), now=now)
            report_n = report(n % 10, "final", f"text {n}") | {"id": f"r{n}"}
            services.outbox.report_changed(session, None, report_n, now)
    databases = [Database(make_engine(database_url)) for _ in range(2)]
    outboxes = [ReportOutbox(db, services.store, OutboxConfig(batch=5)) for db in databases]
    clients = [MllpClient(), MllpClient()]
    try:
        threads = [
            threading.Thread(target=outbox.deliver_due, args=(client,))
            for outbox, client in zip(outboxes, clients, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        got = receiver.wait_for(60)
    finally:
        for client in clients:
            client.close()
        receiver.stop()
        for db in databases:
            db.dispose()
    assert len(got) == 60 and len({m.control_id for m in got}) == 60
    for n in range(10):  # in order per patient, whichever worker sent each
        texts = [
            int(m.raw.split("text ")[1].split("\r")[0].split("|")[0]) for m in got if m.patient == f"PAT-{n}"
        ]
        assert texts == sorted(texts) and len(texts) == 6
    assert services.outbox.count("sent") == 60


@pytest.mark.one_backend
def test_an_enqueue_wakes_the_worker_after_commit(services: Services) -> None:
    receiver = Receiver().start()
    client = MllpClient()
    woken = threading.Event()
    services.outbox.subscribe(woken.set)
    try:
        services.outbox.add_destination("RIS", "127.0.0.1", receiver.port, OruProfile())
        with services.db.write() as session:
            services.store.put(session, patient(1), now=datetime.now(UTC))
            services.outbox.report_changed(session, None, report(1, "final"), datetime.now(UTC))
            assert not woken.is_set()  # not before the commit
        assert woken.wait(5)
        assert services.outbox.deliver_due(client).sent == 1
    finally:
        client.close()
        receiver.stop()


def test_a_later_report_waits_for_the_earlier_one_of_its_patient(services: Services, clock: Clock) -> None:
    port = free_port()
    services.outbox.add_destination("RIS", "127.0.0.1", port, OruProfile())
    client = MllpClient(connect_timeout=2)
    try:
        write(services, None, report(1, "final", "first"), 1)
        assert services.outbox.deliver_due(client).retried == 1  # down: backing off
        receiver = Receiver(port).start()
        try:
            write(services, report(1, "final", "first"), report(1, "amended", "second"), 1)
            write(services, None, report(2, "final", "other patient"), 2)
            counts = services.outbox.deliver_due(client)
            assert counts.sent == 1  # the other patient's; the amendment waits for the first
            assert [m.patient for m in receiver.received] == ["PAT-2"]
            drain(services.outbox, client, clock)
            got = receiver.wait_for(3)
        finally:
            receiver.stop()
    finally:
        client.close()
    assert [(m.patient, m.status) for m in got[1:]] == [("PAT-1", "F"), ("PAT-1", "C")]


@pytest.mark.one_backend
def test_no_patient_data_in_the_logs(
    services: Services, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver(answer=lambda m: ack(m.control_id, "AE", "patient PAT-1 Test1 unknown")).start()
    client = MllpClient()
    try:
        with caplog.at_level(logging.DEBUG):
            services.outbox.add_destination("RIS", "127.0.0.1", receiver.port, OruProfile())
            write(services, None, report(1, "final", "Findings for Test1"), 1)
            services.outbox.deliver_due(client)
    finally:
        client.close()
        receiver.stop()
    assert services.outbox.count("dead") == 1
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "outbox.dead_letter" in logged
    assert "PAT-1" not in logged and "Test1" not in logged
