"""ORU^R01 outbox benchmark: delivery rate to a local MLLP receiver that ACKs at once, and the time
from a DiagnosticReport made final over FHIR to its ACK received, with the outbox worker of
`facade serve`.

    make bench-outbox                # or: .venv/bin/python -m bench.outbox [--messages N] [--database URL]

The services `facade serve` builds, its HTTP application under uvicorn in a thread, its outbox
worker (polling every 200 ms, woken by each commit), and a plain-socket receiver. Rate: N
messages enqueued (N/4 patients, 4 reports each, so the per-patient order holds), then the
worker woken; messages/s from the wake to the last ACK. Latency: preliminary reports created
over FHIR, then each made final by `PUT /fhir/DiagnosticReport/{id}`, ~50 a second, timed from
sending the PUT to the return of the send that got its ACK; p50 / p95. Targets (issue 10):
>= 200 ORU/s, p95 < 1 s.

There is no reference peer for this: no archive we compare against sends ORU^R01 from FHIR.
Not a test.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import socket
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from facade.serve import OUTBOX_INTERVAL
from facade.settings import Settings
from facade.wiring import Services, build_services
from facade.workers import Periodic
from hl7_interface.mllp_client import MllpClient
from mapping.hl7.ack import Acknowledgement
from mapping.hl7.oru import OruProfile

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "outbox"
TARGET_RATE, TARGET_P95_S = 200.0, 1.0


class AckAtOnce:
    """A receiver that ACKs each message (AA) as soon as it is read; counts them."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.count = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while data := conn.recv(65536):
                buffer += data
                while b"\x1c\r" in buffer:
                    message, buffer = buffer.split(b"\x1c\r", 1)
                    control_id = message.split(b"\r", 1)[0].split(b"|")[9]
                    reply = (
                        b"MSH|^~\\&|RIS||FACADE||20261203||ACK^R01^ACK|A|P|2.5.1\rMSA|AA|"
                        + control_id
                        + b"\r"
                    )
                    conn.sendall(b"\x0b" + reply + b"\x1c\r")
                    with self._lock:
                        self.count += 1


class TimedClient:
    """The MLLP client, noting when each message's ACK came back."""

    def __init__(self) -> None:
        self.client = MllpClient()
        self.acked: dict[str, float] = {}

    def send(self, host: str, port: int, payload: bytes, control_id: str) -> Acknowledgement:
        ack = self.client.send(host, port, payload, control_id)
        self.acked[control_id] = time.perf_counter()
        return ack


def _report(n: int, version: int) -> dict[str, Any]:
    text = f"Bench report {n} version {version}\nNo acute finding.\nImpression: normal."
    return {
        "resourceType": "DiagnosticReport",
        "id": f"r{n}-{version}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5", "display": "XR Chest 2V"}]},
        "subject": {"reference": f"Patient/p{n}"},
        "effectiveDateTime": "2026-12-03T09:00:00+01:00",
        "issued": "2026-12-03T10:00:00Z",
        "conclusion": "Normal.",
        "presentedForm": [{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}],
    }


def _patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [{"system": "urn:oid:1.2.3", "value": f"PAT-{n}"}],
        "name": [{"family": f"Bench{n}", "given": ["Pat"]}],
        "birthDate": "1970-01-02",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages for the rate (default 2000)")
    parser.add_argument("--latency", type=int, default=300, help="reports for the latency (default 300)")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between latency reports (0.02)")
    parser.add_argument("--database", help="FACADE_DATABASE_URL (default: SQLite in the run folder)")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    settings = Settings(data_dir=WORK, database_url=args.database, log_level="WARNING")
    services = build_services(settings)
    receiver = AckAtOnce()
    services.outbox.remove_destination("BENCH")  # a PostgreSQL database may hold an earlier run's
    services.outbox.add_destination("BENCH", "127.0.0.1", receiver.port, OruProfile())
    timed = TimedClient()
    worker = Periodic(
        "oru-outbox", OUTBOX_INTERVAL, lambda: services.outbox.deliver_due(timed), on_stop=timed.client.close
    )
    services.outbox.subscribe(worker.wake)  # as `facade serve` wires it (facade.serve.outbox_worker)
    try:
        # the rate: enqueue everything first (the worker is not running), then deliver
        now = datetime.now(UTC)
        patients = max(1, args.messages // 4)
        with services.db.write() as session:
            for n in range(patients):
                services.store.put(session, _patient(n), now=now)
        for first in range(0, args.messages, 200):
            with services.db.write() as session:
                for m in range(first, min(first + 200, args.messages)):
                    services.outbox.report_changed(session, None, _report(m % patients, m // patients), now)
        worker.start()
        started = time.perf_counter()
        worker.wake()
        _wait(lambda: receiver.count >= args.messages, 600)
        rate = args.messages / (time.perf_counter() - started)
        latencies = _final_over_fhir(services, receiver, timed, args, patients)
    finally:
        worker.stop()
        receiver.server.close()
        services.close()
    database = "PostgreSQL" if args.database else "SQLite"
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=100)[94]
    print(f"\nORU^R01 outbox to a local MLLP receiver that ACKs at once ({database})")
    print(f"delivery: {args.messages} messages ({patients} patients) at {rate:.0f} messages/s")
    print(
        f"final over FHIR (PUT sent) -> ACK ({args.latency} reports): "
        f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
    )
    print(
        f"targets: {rate:.0f} vs {TARGET_RATE:.0f} ORU/s ({rate / TARGET_RATE:.2f}x); "
        f"p95 {p95:.3f} s vs {TARGET_P95_S:.0f} s"
    )
    print("no reference peer: no archive we measure against sends ORU^R01 from FHIR")
    return 0


def _final_over_fhir(
    services: Services, receiver: AckAtOnce, timed: TimedClient, args: argparse.Namespace, patients: int
) -> list[float]:
    """Preliminary reports created over HTTP, then made final one by one; seconds from each PUT
    sent to its ORU's ACK."""
    from facade.http import build_http_app
    from tests.conftest import listening_socket, serving
    from tests.smart import bearer, issue_token

    token = issue_token(services, "system/DiagnosticReport.cru")
    with serving(build_http_app(services), listening_socket()) as url:
        http = httpx.Client(base_url=f"{url}/fhir", headers=bearer(token), timeout=30)
        created = []
        for n in range(args.latency):
            body = {k: v for k, v in _report(n % patients, 1000 + n).items() if k != "id"}
            created.append(http.post("/DiagnosticReport", json={**body, "status": "preliminary"}).json())
        before = set(timed.acked)
        starts = []
        for report in created:
            starts.append(time.perf_counter())
            http.put(
                f"/DiagnosticReport/{report['id']}", json={**report, "status": "final"}
            ).raise_for_status()
            time.sleep(args.gap)
        _wait(lambda: receiver.count >= args.messages + args.latency, 120)
    acks = sorted(t for c, t in timed.acked.items() if c not in before)
    return [ack - start for ack, start in zip(acks, starts, strict=True)]


def _wait(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("bench: not every message was acknowledged in time")
        time.sleep(0.005)


if __name__ == "__main__":
    raise SystemExit(main())
