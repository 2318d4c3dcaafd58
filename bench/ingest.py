"""Ingest benchmark: storescu into our SCP and, in the same run, into Orthanc and a bare pynetdicom SCP.

    make bench                      # or: .venv/bin/python -m bench.ingest [--quick]

Sets (generated once under bench/.work/data): 2,000 small MR (64x64) and 500 CT (512x512),
each sent by storescu (TCP_NODELAY=1) on one association, then as two halves on two
associations at once; then one 500 MB multi-frame instance, while the peak memory of the
receiving process is read from /proc (VmHWM). Each server starts in an empty folder; the files of
earlier runs are moved aside and deleted only when the benchmark ends (see `_set_aside`). Orthanc
1.10 (Debian) runs with its defaults (fsync on, 16 KiB PDU, SQLite index); the bare pynetdicom
SCP writes files and nothing else; `fast-bare` is our own receive path with an ingest that only
renames files (`bench.bare_fast`): the ceiling of the receive path. `facade-pynetdicom` is the
facade with `FACADE_DICOM_FAST_PATH=false` (every association pynetdicom's, as before the fast
receive path).

Orthanc and storescp bind every address, so the whole run re-executes itself inside a
private network namespace (`unshare -n`, loopback only): every server listens on
127.0.0.1 as far as the rest of the machine is concerned. Not a test: it prints ratios.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
PYTHON = sys.executable
NETNS_FLAG = "FACADE_BENCH_IN_NETNS"
PG_SOCKET_DIR = "/var/run/postgresql"


@dataclass(frozen=True)
class Target:
    name: str
    ae_title: str
    port: int
    http_port: int = 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10%% of the instances, no 500 MB instance")
    parser.add_argument(
        "--only",
        help="comma-separated targets: orthanc,pynetdicom,pynetdicom-128k,fast-bare,facade-1,facade,"
        "facade-pg,facade-pynetdicom (fast-bare: our receive path, files renamed, nothing else; "
        "facade: one serving process per core; -1: one; -pg: on the local PostgreSQL; "
        "-pynetdicom: one, every association pynetdicom's)",
    )
    args = parser.parse_args()
    if os.environ.get(NETNS_FLAG) != "1":
        return _reexec_in_netns()
    for tool in ("storescu", "echoscu", "Orthanc"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (apt-get install dcmtk orthanc)", file=sys.stderr)
            return 2
    scale = 0.1 if args.quick else 1.0
    sets = {
        "MR 64x64": _dataset("mr", int(2000 * scale), "MR", 64),
        "CT 512x512": _dataset("ct", int(500 * scale), "CT", 512),
    }
    big = None if args.quick else _big_instance()
    targets = (args.only or "orthanc,pynetdicom,fast-bare,facade-1,facade,facade-pg").split(",")
    results: dict[tuple[str, str, int], float] = {}
    cpu: dict[tuple[str, str, int], float] = {}
    memory: dict[str, float] = {}
    for name in targets:
        for label, files in sets.items():
            for associations in (1, 2):
                with _server(name) as (target, pid):
                    before = cpu_seconds(pid)
                    results[(name, label, associations)] = _send(target, files, associations)
                    cpu[(name, label, associations)] = (cpu_seconds(pid) - before) / len(files) * 1000
        if big is not None:
            with _server(name) as (target, pid):
                _send(target, [big], 1)
                memory[name] = _peak_rss_mb(pid)
    _report(results, memory, sets)
    _report_cpu(cpu, sets)
    return 0


def _reexec_in_netns(module: str = "bench.ingest") -> int:
    if shutil.which("unshare") is None:
        print("bench: unshare (util-linux) is needed", file=sys.stderr)
        return 2
    env = {**os.environ, NETNS_FLAG: "1"}
    script = f"ip link set lo up && exec {PYTHON} -m {module} " + " ".join(sys.argv[1:])
    return subprocess.call(["unshare", "-n", "sh", "-c", script], cwd=ROOT, env=env)


def _dataset(name: str, count: int, modality: str, size: int) -> list[Path]:
    folder = WORK / "data" / f"{name}-{count}"
    files = sorted(folder.glob("*.dcm")) if folder.exists() else []
    if len(files) == count:
        return files
    sys.path.insert(0, str(ROOT))
    from tests.dicom_factory import make_instance, new_uid, write

    shutil.rmtree(folder, ignore_errors=True)
    per_series = 100 if modality == "MR" else count
    study, series = new_uid(), new_uid()
    for n in range(count):
        if n and n % per_series == 0:
            study, series = (new_uid(), new_uid()) if n % (per_series * 2) == 0 else (study, new_uid())
        ds = make_instance(
            study_uid=study,
            series_uid=series,
            modality=modality,
            rows=size,
            columns=size,
            instance_number=n % per_series + 1,
            patient_id=f"BENCH{n // (per_series * 2)}",
        )
        write(ds, folder / f"{n:05d}.dcm")
    return sorted(folder.glob("*.dcm"))


def _big_instance() -> Path:
    path = WORK / "data" / "multiframe-500mb.dcm"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT))
    from tests.dicom_factory import make_instance, new_uid, write

    ds = make_instance(
        study_uid=new_uid(), series_uid=new_uid(), modality="CT", rows=512, columns=512, frames=1000
    )
    return write(ds, path)


@contextmanager
def _server(name: str) -> Iterator[tuple[Target, int]]:
    run = WORK / "run" / name
    _set_aside(run)
    run.mkdir(parents=True)
    port = _free_port()
    if name == "orthanc":
        target, command, env = _orthanc(run, port)
    elif name.startswith("pynetdicom"):
        pdu = 131072 if name.endswith("128k") else 16382
        target = Target(name, "BARE", port)
        command = [PYTHON, "-m", "bench.bare_scp", str(run), str(port), str(pdu)]
        env = dict(os.environ)
    elif name == "fast-bare":  # our receive path alone: the ceiling
        target = Target(name, "BARE", port)
        command = [PYTHON, "-m", "bench.bare_fast", str(run), str(port), "262144"]
        env = dict(os.environ)
    elif name.startswith("facade"):
        target = Target(name, "FACADE", port, _free_port())
        (run / "blobs" / ".staging").mkdir(parents=True)  # TMPDIR as `make serve` sets it
        command = [PYTHON, "-m", "facade.cli", "serve"]
        env = facade_env(run, target)
        if name.endswith("-1"):  # one serving process
            env["FACADE_WORKERS"] = "1"
        if "-pg" in name:
            env["FACADE_DATABASE_URL"] = _fresh_postgresql()
        if name == "facade-pynetdicom":  # one process, every association pynetdicom's (before the fast path)
            env["FACADE_WORKERS"] = "1"
            env["FACADE_DICOM_FAST_PATH"] = "false"
    else:
        raise SystemExit(f"unknown target {name}")
    log = (run / "server.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_echo(target, proc)
        _wait_settled(proc.pid)
        yield target, proc.pid
    finally:
        stop(proc)
        log.close()


def _set_aside(folder: Path) -> None:
    """Move an earlier run's files out of the way, to be deleted when this process ends. Deleting
    them now would slow whoever creates files next: ext4 without a journal (as on this class of
    machine) skips inodes freed in the last 5 s (300 s while their inode table block is dirty)
    when it allocates one, so a server that starts right after a deletion of thousands of files
    pays a scan per file it creates, and the rates would measure the order of the targets."""
    if folder.exists():
        folder.rename(_trash() / f"{folder.name}-{time.time_ns()}")


@cache
def _trash() -> Path:
    trash = WORK / "trash"
    trash.mkdir(parents=True, exist_ok=True)
    atexit.register(_empty_trash, trash)
    return trash


def _empty_trash(trash: Path) -> None:
    shutil.rmtree(trash, ignore_errors=True)
    os.sync()  # the freed inodes' table blocks written: a benchmark started next skips them for 5 s only


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a server this benchmark started: SIGTERM, then SIGKILL after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def facade_env(run: Path, target: Target) -> dict[str, str]:
    """The environment of `facade serve` (and of `facade token create` for it) in `run`."""
    return {
        **os.environ,
        "FACADE_DATA_DIR": str(run),
        "FACADE_DICOM_PORT": str(target.port),
        "FACADE_MLLP_PORT": "0",
        "FACADE_HTTP_PORT": str(target.http_port),
        "FACADE_LOG_LEVEL": "WARNING",
        "TMPDIR": str(run / "blobs" / ".staging"),
    }


def _orthanc(run: Path, port: int) -> tuple[Target, list[str], dict[str, str]]:
    http_port = _free_port()
    plugin = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
    config = {
        "Name": "bench",
        "StorageDirectory": str(run / "storage"),
        "IndexDirectory": str(run / "index"),
        "DicomAet": "ORTHANC",
        "DicomPort": port,
        "HttpPort": http_port,
        "Plugins": [str(plugin)] if plugin.exists() else [],  # DICOMweb (bench.query), when installed
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "AuthenticationEnabled": False,
        "RemoteAccessAllowed": False,
        "HttpServerEnabled": True,
        # Orthanc answers C-FIND and C-GET of unknown AEs only when told (bench.query asks)
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
    }
    path = run / "orthanc.json"
    path.write_text(json.dumps(config))
    # Orthanc answers through DCMTK, which also needs TCP_NODELAY or Nagle delays every response.
    env = {**os.environ, "TCP_NODELAY": "1"}
    return Target("orthanc", "ORTHANC", port, http_port), ["Orthanc", str(path)], env


def _wait_for_echo(target: Target, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{target.name} exited with {proc.returncode} before answering C-ECHO")
        ok = (
            subprocess.run(
                ["echoscu", "-aec", target.ae_title, "127.0.0.1", str(target.port)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        if ok:
            return
        time.sleep(0.2)
    raise SystemExit(f"{target.name} did not answer C-ECHO within 60 s")


def _wait_settled(pid: int, seconds: float = 30) -> float:
    """Until the server and its children use under 5% of a core (up to `seconds`): one child of
    `facade serve --workers` answers C-ECHO while another may still be starting, whose start
    would otherwise count in the CPU per instance and take a core from the rate. How long it
    waited."""
    started = time.monotonic()
    deadline = started + seconds
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        if now - before < 0.0125:
            break
        before = now
    return time.monotonic() - started


def _send(target: Target, files: list[Path], associations: int) -> float:
    """Instances per second for `files` sent on `associations` concurrent storescu associations."""
    lists = [files[i::associations] for i in range(associations)]
    env = {**os.environ, "TCP_NODELAY": "1"}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "storescu",
                "-aet",
                "BENCH",
                "-aec",
                target.ae_title,
                "127.0.0.1",
                str(target.port),
                *map(str, part),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for part in lists
    ]
    failures = [p for p in procs if p.wait() != 0]
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"storescu to {target.name} failed: {failures[0].stderr.read()[-400:]!r}")  # type: ignore[union-attr]
    return len(files) / elapsed


def _fresh_postgresql() -> str:
    """A new, empty database on the local PostgreSQL, reached by its Unix socket (the benchmark
    runs in a network namespace of its own, where the server's 127.0.0.1 is not reachable)."""
    name = "facade_bench"
    for command in (["dropdb", "--if-exists"], ["createdb"]):
        subprocess.run([*command, "-h", PG_SOCKET_DIR, "-U", "postgres", name], check=True)
    return f"postgresql+psycopg://postgres@/{name}?host={PG_SOCKET_DIR}"


def _peak_rss_mb(pid: int) -> float:
    """The peak resident memory of `pid` or of any of its children (`facade serve --workers`)."""
    peaks = [float("nan")]
    for process in [pid, *_children(pid)]:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks[1:], default=peaks[0])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) `pid` and its children (`--workers`) have used so
    far; NaN where /proc is not. Less sensitive than a rate to what else the machine runs."""
    try:
        processes = [pid, *_children(pid)]
        stats = [Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split() for p in processes]
    except OSError:
        return float("nan")
    return sum(int(f[11]) + int(f[12]) for f in stats) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return children


def _report(
    results: dict[tuple[str, str, int], float], memory: dict[str, float], sets: dict[str, list[Path]]
) -> None:
    names = sorted({k[0] for k in results}, key=lambda n: (not n.startswith("facade"), n))
    print(
        f"\n{'target':<18}"
        + "".join(f"{f'{label} x{a}':>18}" for label in sets for a in (1, 2))
        + f"{'peak RSS 500MB':>16}"
    )
    for name in names:
        row = "".join(
            f"{results.get((name, label, a), float('nan')):>16.1f}/s" for label in sets for a in (1, 2)
        )
        mem = f"{memory[name]:>13.0f} MB" if name in memory else f"{'-':>16}"
        print(f"{name:<18}{row}{mem}")
    for name in (n for n in names if n.startswith("facade") and "orthanc" in names):
        ratios = "".join(
            f"{results[(name, label, a)] / results[('orthanc', label, a)]:>17.2f}x"
            for label in sets
            for a in (1, 2)
        )
        print(f"{f'{name} / orthanc':<18}{ratios}")


def _report_cpu(cpu: dict[tuple[str, str, int], float], sets: dict[str, list[Path]]) -> None:
    """The receiving server's CPU per instance (all its processes): what bounds two associations
    on a machine whose cores the senders share, and steadier than the rates under other load."""
    names = sorted({k[0] for k in cpu}, key=lambda n: (not n.startswith("facade"), n))
    columns = "".join(f"{f'{label} x{a}':>18}" for label in sets for a in (1, 2))
    print(f"\n{'server CPU ms/inst':<18}{columns}")
    for name in names:
        print(f"{name:<18}" + "".join(f"{cpu[(name, label, a)]:>18.2f}" for label in sets for a in (1, 2)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
