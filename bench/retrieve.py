"""WADO-RS retrieve benchmark: the peak memory of retrieving a 1 GB study (issue 8: "retrieving a
1 GB study keeps the server under 300 MB resident").

    make bench-retrieve             # or: .venv/bin/python -m bench.retrieve [--instances N]

Writes N instances of 100 MB (2048x2048, 12 frames, Explicit VR Little Endian) of one study in a
child process, then, in a fresh process: stores them through the ingest path (SQLite in a
temporary data directory), serves the real HTTP application under uvicorn in a thread, retrieves
the study (as stored) and its metadata with a streaming httpx client, and reads the process's
peak resident memory (VmHWM) before and after. The client shares the process: it reads the
body in chunks and keeps none, so what grows is the server. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def peak_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return 0


def generate(directory: Path, count: int) -> str:
    from tests.dicom_factory import make_instance, new_uid, write

    study, series = new_uid(), new_uid()
    for i in range(count):
        ds = make_instance(
            study_uid=study, series_uid=series, rows=2048, columns=2048, frames=12, instance_number=i + 1
        )
        write(ds, directory / f"{i:04d}.dcm")
    return study


def measure(directory: Path, study: str) -> None:
    from facade.http import build_http_app
    from facade.settings import Settings
    from facade.wiring import build_services
    from storage.usecases.ingest import Source
    from tests.conftest import listening_socket, serving
    from tests.smart import bearer, issue_token

    sock = listening_socket()
    settings = Settings(data_dir=directory / "data", http_port=sock.getsockname()[1])
    services = build_services(settings)
    for path in sorted(directory.glob("*.dcm")):
        with services.ingest.staging() as staging, path.open("rb") as f:
            while chunk := f.read(1 << 20):
                staging.write(chunk)
            services.ingest.store(staging, Source("import"))
    token = issue_token(services, "system/*.rs")
    with serving(build_http_app(services), sock) as url:
        for what in ("", "/metadata"):
            before, started, size = peak_mb(), time.monotonic(), 0
            with httpx.stream(
                "GET", f"{url}/dicomweb/studies/{study}{what}", headers=bearer(token), timeout=600
            ) as r:
                r.raise_for_status()
                for chunk in r.iter_raw():
                    size += len(chunk)
            print(
                f"GET /studies/{{study}}{what}: {size:,} bytes in {time.monotonic() - started:.1f} s,"
                f" peak RSS {before} MB before, {peak_mb()} MB after"
            )
    services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10, help="of 100 MB each (default 10: 1 GB)")
    parser.add_argument("--study", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.study:  # the measuring child
        measure(args.dir, args.study)
        return
    with tempfile.TemporaryDirectory(prefix="bench-retrieve-") as tmp:
        directory = Path(tmp)
        study = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from bench.retrieve import generate; from pathlib import Path; "
                f"print(generate(Path({str(directory)!r}), {args.instances}))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        subprocess.run(
            [sys.executable, "-m", "bench.retrieve", "--study", study, "--dir", str(directory)], check=True
        )


if __name__ == "__main__":
    main()
