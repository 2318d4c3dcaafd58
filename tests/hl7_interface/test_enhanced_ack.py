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
from storage.hl7_inbox.models import Hl7MessageRow
from tests.hl7_interface.test_orders_over_mllp import acks, read_until
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
