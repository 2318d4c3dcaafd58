"""`facade serve --workers 2`: two serving processes on one DICOM and one HTTP port; `kill -9` of
one of them during a two-association send loses no acknowledged instance."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage
from sqlalchemy import func, select

from facade.processes import listening_socket
from facade.settings import Settings
from facade.wiring import build_services
from storage.dicom_index.models import InstanceRow, StudyRow
from tests.dicom_factory import make_instance, new_uid, write
from tests.facade.test_serve import free_port, serve_env, wait_until
from tests.tools import require_tool


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "facade.cli", "serve", "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _events(log: Path, name: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == name]


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from any of its threads: /proc/PID/task/*/children)."""
    return sorted(
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    )


def _one_in_each_child(ae: AE, port: int, log: Path) -> list[Any]:
    """Two associations, served by two different children (which child accepts a connection is
    the kernel's choice: a second one in the same child is released and asked again)."""
    first = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert first.is_established
    wait_until(lambda: len(_events(log, "association.accepted")) == 1)
    owner = _events(log, "association.accepted")[0]["process"]
    for attempt in range(2, 42):
        second = ae.associate("127.0.0.1", port, ae_title="FACADE")
        assert second.is_established
        wait_until(lambda n=attempt: len(_events(log, "association.accepted")) == n)  # type: ignore[misc]
        if _events(log, "association.accepted")[-1]["process"] != owner:
            return [first, second]
        second.release()
    raise AssertionError("every association went to the same child")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_two_workers_share_the_ports(settings: Settings, tmp_path: Path) -> None:
    """Both children accept associations on the one port, and store into the one index."""
    storescu, echoscu = require_tool("storescu"), require_tool("echoscu")
    http_port, dicom_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    proc = _start(serve_env(settings, http_port, dicom_port), log)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2).status_code == 200)
        wait_until(lambda: len(_events(log, "dicom.listening")) == 2)
        children = _children(proc.pid)
        assert len(children) == 2
        study = new_uid()
        folders = []
        for k in range(2):
            series = new_uid()
            for n in range(20):
                ds = make_instance(study_uid=study, series_uid=series, instance_number=n + 1)
                write(ds, tmp_path / f"in{k}" / f"{n}.dcm")
            folders.append(tmp_path / f"in{k}")
        sends = [
            subprocess.Popen(
                [storescu, "-aec", "FACADE", "+sd", "127.0.0.1", str(dicom_port), str(folder)],
                env={**os.environ, "TCP_NODELAY": "1"},
            )
            for folder in folders
        ]
        assert [send.wait(timeout=60) for send in sends] == [0, 0]
        accepted = {event["process"] for event in _events(log, "association.accepted")}
        assert accepted <= set(children)
        for _ in range(40):  # which child takes a connection is the kernel's choice: both do
            if accepted == set(children):
                break
            subprocess.run([echoscu, "-aec", "FACADE", "127.0.0.1", str(dicom_port)], check=True, timeout=30)
            accepted = {event["process"] for event in _events(log, "association.accepted")}
        assert accepted == set(children)
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert len(_events(log, "facade.stopped")) == 3  # the parent and its two children
    services = build_services(settings, migrate=False)
    try:
        with services.db.read() as s:
            assert s.scalar(select(func.count()).select_from(InstanceRow)) == 40
            assert s.scalar(select(StudyRow.num_instances)) == 40
    finally:
        services.close()


def test_kill_9_of_a_worker_loses_no_acknowledged_instance(settings: Settings, tmp_path: Path) -> None:
    """Two associations send; one child is killed mid-stream. Its association ends; the parent
    indexes what the child held and starts another child; the other association goes on. After a
    stop, every instance either association saw acknowledged is stored whole."""
    http_port, dicom_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    proc = _start(serve_env(settings, http_port, dicom_port), log)
    acknowledged: dict[str, str] = {}  # SOP Instance UID -> sha256 of the pixel data sent
    lock = threading.Lock()
    try:
        wait_until(lambda: len(_events(log, "dicom.listening")) == 2)
        study = new_uid()
        ae = AE(ae_title="CRASHTEST")
        ae.dimse_timeout = 10
        ae.add_requested_context(MRImageStorage)
        associations = _one_in_each_child(ae, dicom_port, log)
        victim = int(_events(log, "association.accepted")[0]["process"])  # type: ignore[call-overload]
        killed = threading.Event()

        def send(assoc: object, series: str) -> None:
            for n in range(1, 400):
                if not assoc.is_established:  # type: ignore[attr-defined]
                    return
                ds = make_instance(
                    study_uid=study, series_uid=series, instance_number=n, rows=128, columns=128
                )
                status = assoc.send_c_store(ds)  # type: ignore[attr-defined]
                if "Status" in status and status.Status == 0x0000:
                    with lock:
                        acknowledged[ds.SOPInstanceUID] = hashlib.sha256(ds.PixelData).hexdigest()
                        if len(acknowledged) == 30 and not killed.is_set():
                            killed.set()
                            threading.Timer(0.02, os.kill, (victim, signal.SIGKILL)).start()
                if killed.is_set() and n > 150:
                    return

        threads = [threading.Thread(target=send, args=(a, new_uid())) for a in associations]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for a in associations:
            if a.is_established:
                a.release()
        assert killed.is_set()
        wait_until(lambda: len(_events(log, "worker.exited")) == 1)
        wait_until(lambda: len(_children(proc.pid)) == 2 and victim not in _children(proc.pid))
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert len(acknowledged) > 30
    services = build_services(settings, migrate=False)
    try:
        assert services.blobs.held() == []  # every held file indexed: by the parent or at stop
        with services.db.read() as s:
            rows = {r.sop_uid: r for r in s.scalars(select(InstanceRow))}
        for sop_uid, pixels in acknowledged.items():
            assert sop_uid in rows, "an acknowledged instance is missing after kill -9 of its worker"
            with services.blobs.open(rows[sop_uid].blob_key) as f:
                stored = dcmread(f)
            assert hashlib.sha256(stored.PixelData).hexdigest() == pixels  # whole, not truncated
    finally:
        services.close()


def test_children_stop_when_their_parent_is_killed(settings: Settings, tmp_path: Path) -> None:
    """No orphan serves on: `kill -9` of the parent, and its children stop by themselves
    (freeing the ports), so that the service can start again."""
    http_port, dicom_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    env = serve_env(settings, http_port, dicom_port)
    proc = _start(env, log)
    try:
        wait_until(lambda: len(_events(log, "dicom.listening")) == 2)
        children = _children(proc.pid)
        proc.kill()
        proc.wait(timeout=30)
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children))
        assert sorted(event["process"] for event in _events(log, "worker.orphaned")) == children
        for port in (http_port, dicom_port):  # freed: bound now as `facade serve` binds them
            listening_socket("127.0.0.1", port).close()
        # Started again on other ports: another test may take these the moment they are free.
        http_port = free_port()
        again = _start(serve_env(settings, http_port, free_port()), log)
        healthz = f"http://127.0.0.1:{http_port}/healthz"
        try:
            # a second cold start (interpreter, migrations check, two children) on a loaded machine
            wait_until(lambda: httpx.get(healthz, timeout=2).status_code == 200, timeout=90)
        finally:
            _stop(again)
        assert again.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
