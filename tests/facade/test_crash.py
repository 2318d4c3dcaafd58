"""`kill -9` of `facade serve` in the middle of a C-STORE stream loses no acknowledged instance:
the server starts again on what was left behind and indexes what it had acknowledged."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage
from sqlalchemy import select

from facade.settings import Settings
from facade.wiring import build_services
from storage.dicom_index.models import InstanceRow
from tests.dicom_factory import make_instance, new_uid
from tests.facade.test_serve import free_port, serve_env, wait_until

KILL_AFTER_ACKS = 15


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "facade.cli", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def test_kill_9_during_ingest_loses_no_acknowledged_instance(settings: Settings, tmp_path: Path) -> None:
    http_port, dicom_port = free_port(), free_port()
    env = serve_env(settings, http_port, dicom_port, FACADE_WORKERS="1")  # one process: the one killed
    log = tmp_path / "serve.log"
    proc = _serve(env, log)
    healthz = f"http://127.0.0.1:{http_port}/healthz"
    acknowledged: dict[str, str] = {}  # SOP Instance UID -> sha256 of the pixel data sent
    try:
        wait_until(lambda: httpx.get(healthz, timeout=2).status_code == 200)
        study, series = new_uid(), new_uid()
        ae = AE(ae_title="CRASHTEST")
        # the request in flight at the kill is never answered: without this the SCU at times waited
        # pynetdicom's default 30 s for it (the bulk of this test's time)
        ae.dimse_timeout = 10
        ae.add_requested_context(MRImageStorage)
        assoc = ae.associate("127.0.0.1", dicom_port, ae_title="FACADE")
        assert assoc.is_established
        killer: threading.Timer | None = None
        for n in range(1, 2000):
            ds = make_instance(study_uid=study, series_uid=series, instance_number=n, rows=128, columns=128)
            if not assoc.is_established:
                break
            status = assoc.send_c_store(ds)
            if "Status" in status and status.Status == 0x0000:
                acknowledged[ds.SOPInstanceUID] = hashlib.sha256(ds.PixelData).hexdigest()
            if len(acknowledged) == KILL_AFTER_ACKS and killer is None:
                # from another thread, at a moment the sender does not choose: mid-request as a rule
                killer = threading.Timer(0.05, os.kill, (proc.pid, signal.SIGKILL))
                killer.start()
        assoc.abort()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert len(acknowledged) >= KILL_AFTER_ACKS

    again = _serve(env, log)  # the service starts again on what the crash left, indexing what it held
    try:
        wait_until(lambda: httpx.get(healthz, timeout=2).status_code == 200)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
    assert again.returncode == 0

    services = build_services(settings)
    try:
        with services.db.read() as s:
            rows = {r.sop_uid: r for r in s.scalars(select(InstanceRow))}
        for sop_uid, pixels in acknowledged.items():
            assert sop_uid in rows, "an acknowledged instance is missing after kill -9"
            with services.blobs.open(rows[sop_uid].blob_key) as f:
                stored = dcmread(f)
            assert stored.SOPInstanceUID == sop_uid
            assert hashlib.sha256(stored.PixelData).hexdigest() == pixels  # whole, not truncated
        assert services.blobs.held() == []  # all of it indexed, nothing held any more
    finally:
        services.close()
