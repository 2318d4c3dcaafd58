"""Orders-in benchmark: ORM^O01 NW over MLLP into `facade serve`, acknowledged after commit.

    make bench-orders                # or: .venv/bin/python -m bench.orders [--orders N] [--database URL]

One connection, then four at once, each sending new orders back to back (each waits for its
ACK, as MLLP senders do); printed: orders/s and ACK latency p50 / p95 against the targets of
issue 9 (>= 300 orders/s on one connection, ACK p95 < 20 ms), and the server's CPU time per
order (user + system, all its threads: steadier than the rate on a machine that runs other
work meanwhile). Every order is a new patient,
ServiceRequest and worklist entry, committed with the message and its ACK.

There is no reference peer in this run: Orthanc has no HL7 listener (its worklists come from
plugins) and dcmtk has no MLLP; the worklist side is compared with dcmtk's wlmscpfs elsewhere.
Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.ingest import cpu_seconds, stop

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "orders"
PYTHON = sys.executable
TARGET_RATE, TARGET_P95_MS = 300.0, 20.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="orders per run (default 2000)")
    parser.add_argument("--database", help="FACADE_DATABASE_URL (default: SQLite in the run folder)")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    port, http_port, dicom_port = _free_port(), _free_port(), _free_port()
    env = {
        **os.environ,
        "FACADE_DATA_DIR": str(WORK),
        "FACADE_MLLP_PORT": str(port),
        "FACADE_HTTP_PORT": str(http_port),
        "FACADE_DICOM_PORT": str(dicom_port),
        "FACADE_LOG_LEVEL": "WARNING",
        "FACADE_WORKLIST_STATIONS": '{"CT": ["CT1", "CT2"]}',
    }
    if args.database:
        env["FACADE_DATABASE_URL"] = args.database
    log = (WORK / "server.log").open("wb")
    proc = subprocess.Popen([PYTHON, "-m", "facade.cli", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        _wait(port, proc)
        wait_idle(proc.pid)  # the serving children start meanwhile: not in the first run's figures
        run = _run_tag()
        _send(port, f"{run}w", 0, 50)  # first statements, caches
        rows = []
        for connections in (1, 4):
            cpu = cpu_seconds(proc.pid)
            latencies, elapsed = _run(port, f"{run}c{connections}", connections, args.orders // connections)
            cpu_ms = (cpu_seconds(proc.pid) - cpu) / len(latencies) * 1000
            rows.append((connections, len(latencies) / elapsed, _p(latencies, 50), _p(latencies, 95), cpu_ms))
    finally:
        stop(proc)
        log.close()
    database = "PostgreSQL" if args.database else "SQLite"
    print(f"\nORM^O01 NW over MLLP, ACK after commit ({args.orders} orders per run, {database})")
    header = ("connections", "orders/s", "ACK p50 ms", "ACK p95 ms", "server CPU ms/order")
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, (11, 9, 10, 10, 19), strict=True)))
    for connections, rate, p50, p95, cpu_ms in rows:
        print(f"{connections:>11}  {rate:>9.0f}  {p50:>10.2f}  {p95:>10.2f}  {cpu_ms:>19.2f}")
    one = rows[0]
    print(
        f"\ntargets (one connection): {one[1]:.0f} orders/s vs {TARGET_RATE:.0f} "
        f"({one[1] / TARGET_RATE:.2f}x); ACK p95 {one[3]:.1f} ms vs {TARGET_P95_MS:.0f} ms"
    )
    return 0


def _run_tag() -> str:
    """Three characters that differ from run to run: a database kept from an earlier run (a
    PostgreSQL one) gets new orders, not resends of that run's (answered from the inbox)."""
    n = int(time.time() * 10) % 36**3
    return "".join("0123456789abcdefghijklmnopqrstuvwxyz"[n // 36**k % 36] for k in (2, 1, 0))


def _run(port: int, tag: str, connections: int, each: int) -> tuple[list[float], float]:
    """`connections` senders at once, `each` orders apiece: every ACK latency, and the seconds."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        got = _send(port, f"{tag}-{n}", n * each, each)
        with lock:
            latencies.extend(got)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start


def _send(port: int, tag: str, first: int, count: int) -> list[float]:
    """`count` new orders on one connection; the latency of each ACK in ms."""
    latencies = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        for n in range(first, first + count):
            message = _orm(f"{tag}-{n}").encode()
            start = time.perf_counter()
            sock.sendall(b"\x0b" + message + b"\x1c\r")
            while b"\x1c\r" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit("bench: the server closed the connection")
                buffer += chunk
            ack, buffer = buffer.split(b"\x1c\r", 1)
            latencies.append((time.perf_counter() - start) * 1000)
            if b"MSA|AA|" not in ack:
                raise SystemExit(f"bench: not accepted: {ack[:200]!r}")
    return latencies


def _orm(key: str) -> str:
    segments = [
        f"MSH|^~\\&|RIS|HOSP|FACADE|HOSP|20261203101500||ORM^O01|{key}|P|2.3.1",
        f"PID|||P{key}^^^HOSP^MR||Bench^Patient||19700102|F",
        "PV1||O|RAD^^^HOSP",
        f"ORC|NW|PL{key}^RIS|||SC||^^^20261203110000^^R||20261203101000",
        f"OBR|1|PL{key}^RIS||CTHEAD^CT Head^L|||||||||||||A{key[-15:]}|RP{key[-14:]}||||CT"
        "|||^^^20261203110000^^R",
    ]
    return "\r".join(segments) + "\r"


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: facade serve ended (see {WORK / 'server.log'})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("bench: facade serve did not listen within 60 s")


def wait_idle(pid: int, *, idle: float = 0.05, within: float = 60.0) -> None:
    """Wait until the server (with its children) uses less than `idle` of a CPU for half a
    second: `facade serve` listens to MLLP in its parent before its serving children (one per
    core) have started, and their start-up would otherwise be counted in the first run."""
    deadline = time.monotonic() + within
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - before < idle * 0.5:
            return
        before = now


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1] if len(samples) > 1 else samples[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    raise SystemExit(main())
