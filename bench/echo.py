"""C-ECHO round trips per second: echoscu (--repeat, one association) against our AE with the fast
receive path, with pynetdicom's (`AeConfig.fast_path=False`), and dcmtk's storescp as reference.

    .venv/bin/python -m bench.echo [--repeat 2000] [--runs 3]

Medians of the runs, interleaved. Not a test: it prints rates and ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable

from dicom_bridge.ae import AeConfig, start_server, storage_ae


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    echoscu = shutil.which("echoscu")
    if echoscu is None:
        print("bench: echoscu not found (apt-get install dcmtk)")
        return 2
    targets: dict[str, Callable[[], tuple[int, Callable[[], None]]]] = {
        "facade fast path": lambda: _ours(fast=True),
        "facade, pynetdicom": lambda: _ours(fast=False),
    }
    if shutil.which("storescp"):
        targets["dcmtk storescp"] = _storescp
    rates: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(args.runs):
        for name, start in targets.items():
            port, stop = start()
            try:
                began = time.perf_counter()
                subprocess.run(
                    [echoscu, "--repeat", str(args.repeat), "-aec", "FACADE", "127.0.0.1", str(port)],
                    check=True,
                    env={**os.environ, "TCP_NODELAY": "1"},
                    timeout=600,
                )
                rates[name].append(args.repeat / (time.perf_counter() - began))
            finally:
                stop()
    fast = statistics.median(rates["facade fast path"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:22} {median:8.0f} C-ECHO/s   fast path / this: {fast / median:5.2f}x")
    return 0


def _ours(*, fast: bool) -> tuple[int, Callable[[], None]]:
    server = start_server(storage_ae(AeConfig(fast_path=fast)), ("127.0.0.1", 0), [])
    return int(server.server_address[1]), server.shutdown


def _storescp() -> tuple[int, Callable[[], None]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    directory = tempfile.mkdtemp(prefix="bench-echo-")
    process = subprocess.Popen(
        ["storescp", "-aet", "FACADE", "-od", directory, str(port)], env={**os.environ, "TCP_NODELAY": "1"}
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)

    def stop() -> None:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)

    return port, stop


if __name__ == "__main__":
    raise SystemExit(main())
