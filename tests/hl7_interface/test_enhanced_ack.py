"""Enhanced acknowledgement mode (HL7 v2.5.1 2.9.3; MSH-15 / MSH-16, table 0155) over raw
sockets against the serving composition's MLLP listener: the accept ACK (CA / CE / CR) is sent
or not as MSH-15 asks, a resend gets the same one again, and the connection reads on when
nothing is answered."""

from __future__ import annotations

import socket

import httpx
from sqlalchemy import select

from facade.wiring import Services
from hl7_interface.mllp import frame
from hl7_interface.mllp_client import MllpClient
from mapping.hl7.oru import OruProfile
from storage.hl7_inbox.models import Hl7MessageRow
from tests.hl7_interface.test_orders_over_mllp import acks, read_until
from tests.hl7_peer import Receiver, ack
from tests.hl7_samples import adt, orm
from tests.smart import bearer


def enhanced(text: str, accept: str, application: str = "NE") -> str:
    """The message with MSH-15 / MSH-16 set (its MSH has at least 12 fields)."""
    msh, rest = text.split("\r", 1)
    fields = msh.split("|")[:12]
    fields += [""] * (12 - len(fields)) + ["", "", accept, application]
    return "|".join(fields) + "\r" + rest


def exchange(sock: socket.socket, text: str) -> bytes:
    sock.sendall(frame(text.encode()))
    (answer,) = acks(read_until(sock, 1))
    return answer


def test_accept_ack_always_after_the_commit_and_the_same_one_for_a_resend(
    mllp_port: int, live_http: str, token: str
) -> None:
    message = enhanced(orm(msg_id="E1"), "AL")
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
        first = exchange(sock, message)
        assert b"\rMSA|CA|E1" in first and b"ERR" not in first
        assert exchange(sock, message) == first  # a resend: the stored accept ACK, not applied again
    fhir = httpx.Client(base_url=f"{live_http}/fhir", headers=bearer(token), timeout=30)
    assert len(fhir.get("/ServiceRequest", params={"identifier": "ACC-1"}).json()["entry"]) == 1


def test_accept_ack_conditions_on_one_connection(mllp_port: int, services: Services) -> None:
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
        # ER: none for a message committed; SU: none for a reject (an event we do not take);
        # NE: none at all. The connection reads on: the next answer is the next message's.
        sock.sendall(frame(enhanced(orm(msg_id="E2"), "ER").encode()))
        sock.sendall(frame(enhanced(adt("A03", msg_id="E3"), "SU").encode()))
        sock.sendall(frame(enhanced(adt("A08", msg_id="E4"), "NE").encode()))
        answer = exchange(sock, enhanced(adt("A08", msg_id="E5"), "SU"))
        assert b"\rMSA|CA|E5" in answer

        # ER on a reject: CR with the ERR saying why
        rejected = exchange(sock, enhanced(adt("A03", msg_id="E6"), "ER"))
        assert b"\rMSA|CR|E6" in rejected and b"201^Unsupported event code" in rejected

        # an application error is still kept in safe storage: CA (the error is the application
        # ACK's to tell); with SU it is answered, being accepted
        cancel = orm("CA", msg_id="E7", placer="NOPE", filler="NOPE", accession="NOPE")
        assert b"\rMSA|CA|E7" in exchange(sock, enhanced(cancel, "SU"))
        with services.db.read() as session:
            kept = session.scalar(select(Hl7MessageRow.ack_code).where(Hl7MessageRow.control_id == "E7"))
        assert kept == "AE"

        # a condition outside table 0155 is a reject naming MSH-15
        bad = exchange(sock, enhanced(adt("A08", msg_id="E8"), "XX"))
        assert b"\rMSA|CR|E8" in bad and b"MSH^1^15" in bad

        # original mode as before
        assert b"\rMSA|AA|E9" in exchange(sock, adt("A08", msg_id="E9"))


def test_application_acks_go_to_the_senders_registered_destination(
    mllp_port: int, services: Services
) -> None:
    """MSH-16: the application ACK is a message of its own, queued in the message's transaction
    for the HL7 destination named as the sending application (MSH-3 `RIS`) and delivered by the
    outbox, to the RIS's own MLLP listener (`tests/hl7_peer.Receiver`, answering CA)."""
    receiver = Receiver(answer=lambda m: ack(m.control_id, "CA")).start()
    client = MllpClient(connect_timeout=2, ack_timeout=5)
    try:
        services.outbox.add_destination("RIS", "127.0.0.1", receiver.port, OruProfile())
        with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
            assert b"\rMSA|CA|A1" in exchange(sock, enhanced(orm(msg_id="A1"), "AL", "AL"))
            cancel = orm("CA", msg_id="A2", placer="NOPE", filler="NOPE", accession="NOPE")
            assert b"\rMSA|CA|A2" in exchange(sock, enhanced(cancel, "AL", "ER"))
            assert b"\rMSA|CA|A3" in exchange(sock, enhanced(adt("A08", msg_id="A3"), "AL", "ER"))  # none
            assert b"\rMSA|CR|A4" in exchange(sock, enhanced(adt("A03", msg_id="A4"), "AL", "AL"))  # none
            resent = exchange(sock, enhanced(orm(msg_id="A1"), "AL", "AL"))  # a resend: no second one
            assert b"\rMSA|CA|A1" in resent
        assert services.outbox.deliver_due(client).sent == 2
        first, second = receiver.wait_for(2)
    finally:
        client.close()
        receiver.stop()
    assert "\rMSA|AA|A1" in first.raw and first.raw.startswith("MSH|^~\\&|FACADE|HOSP|RIS|HOSP|")
    assert "|ACK^O01|" in first.raw and "|P|2.3.1|||AL|NE" in first.raw  # it wants our accept ACK back
    assert "\rMSA|AE|A2|" in second.raw and "ERR|ORC^1^2^204" in second.raw  # unknown order
    assert [e.state for e in services.outbox.list()] == ["sent", "sent"]


def test_without_a_destination_for_the_sender_no_application_ack_is_queued(
    mllp_port: int, services: Services
) -> None:
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
        assert b"\rMSA|CA|B1" in exchange(sock, enhanced(orm(msg_id="B1"), "AL", "AL"))
    assert services.outbox.list() == []


def test_a_destination_for_results_only_gets_no_application_ack(mllp_port: int, services: Services) -> None:
    services.outbox.add_destination("RIS", "127.0.0.1", 2575, OruProfile(receives=("oru",)))
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
        assert b"\rMSA|CA|C1" in exchange(sock, enhanced(orm(msg_id="C1"), "AL", "AL"))
    assert services.outbox.list() == []
