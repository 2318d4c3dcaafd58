"""Orders from a RIS over MLLP to FHIR: `mllp_send` and raw sockets against the serving
composition's listener and inbox; the ServiceRequests read back over the FHIR API."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from facade.settings import Settings
from facade.wiring import Services
from hl7_interface.mllp import frame
from tests.hl7_samples import omi, orm, oru
from tests.smart import bearer

MLLP_SEND = str(Path(sys.executable).with_name("mllp_send"))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worklist_stations": {"CT": ["CT1"]}})


def acks(raw: bytes) -> list[bytes]:
    return [part.split(b"\x1c")[0] for part in raw.split(b"\x0b")[1:]]


def read_until(sock: socket.socket, count: int) -> bytes:
    data = b""
    while data.count(b"\x1c\r") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_mllp_send_orders_become_service_requests(
    mllp_port: int, live_http: str, token: str, tmp_path: Path
) -> None:
    file = tmp_path / "orders.hl7"
    file.write_text((orm() + omi()).replace("\r", "\n"))
    sent = subprocess.run(
        [MLLP_SEND, "--loose", "--file", str(file), "--port", str(mllp_port), "127.0.0.1"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    answers = acks(sent.stdout)
    assert len(answers) == 2 and all(b"\rMSA|AA|" in a for a in answers)
    fhir = httpx.Client(base_url=f"{live_http}/fhir", headers=bearer(token), timeout=30)
    bundle = fhir.get("/ServiceRequest", params={"identifier": "ACC-2"}).json()
    (entry,) = bundle["entry"]
    assert entry["resource"]["priority"] == "stat"
    by_requester = fhir.get("/ServiceRequest", params={"requester:identifier": "5678"}).json()
    assert [e["resource"]["requester"]["display"] for e in by_requester["entry"]] == ["Otto Order"]
    assert "entry" not in fhir.get("/ServiceRequest", params={"requester:identifier": "other"}).json()
    listed = fhir.get(
        "/ServiceRequest", params={"status": "active", "_include": "ServiceRequest:patient"}
    ).json()
    kinds = sorted(e["resource"]["resourceType"] for e in listed["entry"])
    assert kinds == ["Patient", "Patient", "ServiceRequest", "ServiceRequest"]


def test_two_messages_in_one_segment_and_a_split_frame(mllp_port: int, services: Services) -> None:
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
        sock.sendall(frame(orm().encode()) + frame(omi().encode()))
        both = acks(read_until(sock, 2))
        assert [b"MSA|AA|MSG0001" in both[0], b"MSA|AA|OMI0001" in both[1]] == [True, True]
        cancel = frame(orm("CA", msg_id="CA1", order_status="CA").encode())
        for i in range(0, len(cancel), 7):
            sock.sendall(cancel[i : i + 7])
        (answer,) = acks(read_until(sock, 1))
        assert b"MSA|AA|CA1" in answer


def test_garbage_gets_a_reject_and_the_listener_serves_on(mllp_port: int) -> None:
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
        sock.sendall(frame(b"\x00\x01 not hl7 at all"))
        (answer,) = acks(read_until(sock, 1))
        assert b"MSA|AR" in answer and b"ERR|" in answer
        sock.sendall(frame(orm().encode()))
        (answer,) = acks(read_until(sock, 1))
        assert b"MSA|AA|MSG0001" in answer


def test_mllp_send_a_report_becomes_the_orders_diagnostic_report(
    mllp_port: int, live_http: str, token: str, tmp_path: Path
) -> None:
    """RIS -> ORU^R01 over MLLP -> the DiagnosticReport of the order, read over FHIR with its
    ServiceRequest (`_include`) and found from the order (`_revinclude`)."""
    file = tmp_path / "order-and-report.hl7"
    file.write_text((orm() + oru("P", msg_id="R1") + oru("F", msg_id="R2")).replace("\r", "\n"))
    sent = subprocess.run(
        [MLLP_SEND, "--loose", "--file", str(file), "--port", str(mllp_port), "127.0.0.1"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    answers = acks(sent.stdout)
    assert len(answers) == 3 and all(b"\rMSA|AA|" in a for a in answers), answers
    assert b"ACK^R01" in answers[2]
    fhir = httpx.Client(base_url=f"{live_http}/fhir", headers=bearer(token), timeout=30)
    bundle = fhir.get("/DiagnosticReport", params={"_include": "DiagnosticReport:based-on"}).json()
    kinds = sorted((e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"])
    assert kinds == [("DiagnosticReport", "match"), ("ServiceRequest", "include")]
    report = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    assert report["status"] == "final" and report["meta"]["versionId"] == "2"
    orders = fhir.get(
        "/ServiceRequest", params={"identifier": "ACC-1", "_revinclude": "DiagnosticReport:based-on"}
    ).json()
    assert [e["resource"]["id"] for e in orders["entry"] if e["search"]["mode"] == "include"] == [
        report["id"]
    ]
