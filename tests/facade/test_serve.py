"""`facade serve` as a user runs it: one process, HTTP + DICOM, JSON logs without PHI, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from facade.settings import Settings
from storage.audit.models import AuditEventRow
from storage.audit.store import AuditStore
from storage.db import Database, make_engine
from storage.migrate import head_revision
from tests.cli import run_cli
from tests.dicom_factory import make_instance, new_uid, write
from tests.smart import ASSERTION_TYPE, assertion, bearer, ec_key, public_jwks
from tests.tools import require_tool

PATIENT_NAME, PATIENT_ID = "Secretname^Nobody", "SECRET-PID-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def serve_env(settings: Settings, http_port: int, dicom_port: int, **more: str) -> dict[str, str]:
    """The environment of a `facade serve` subprocess on the test's database and free ports."""
    return {
        **os.environ,
        "FACADE_DATA_DIR": str(settings.data_dir),
        "FACADE_DATABASE_URL": settings.resolved_database_url(),
        "FACADE_HTTP_PORT": str(http_port),
        "FACADE_DICOM_PORT": str(dicom_port),
        "FACADE_MLLP_PORT": "0",
        **more,
    }


def test_serve_stores_publishes_logs_without_phi_and_stops(settings: Settings, tmp_path: Path) -> None:
    storescu = require_tool("storescu")
    http_port, dicom_port = free_port(), free_port()
    env = serve_env(
        settings,
        http_port,
        dicom_port,
        FACADE_TIMEZONE="UTC",
        FACADE_STABLE_AGE_SECONDS="1",
        FACADE_LOG_LEVEL="DEBUG",  # even then: no PHI, no credentials
    )
    key = ec_key()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(public_jwks(key)))
    added = subprocess.run(
        [
            *(sys.executable, "-m", "facade.cli", "client", "add", "--name", "Backend", "--kind", "backend"),
            *("--client-id", "svc", "--jwks-file", str(jwks), "--scope", "system/*.rs"),
        ],
        env={**env, "FACADE_BASE_URL": f"http://127.0.0.1:{http_port}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    assert "client_id: svc" in added.stdout and "client_secret" not in added.stdout
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facade.cli", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200)
        assert httpx.get(f"{base}/fhir/ImagingStudy", timeout=5).status_code == 401
        issued = httpx.post(
            f"{base}/auth/token",
            data={
                "grant_type": "client_credentials",
                "scope": "system/*.rs",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion("svc", f"{base}/auth/token", key),
            },
            timeout=10,
        )
        assert issued.status_code == 200, issued.text
        access_token = issued.json()["access_token"]
        auth = bearer(access_token)
        study = new_uid()
        series = new_uid()
        for n in range(1, 4):
            write(
                make_instance(
                    study_uid=study,
                    series_uid=series,
                    instance_number=n,
                    patient_name=PATIENT_NAME,
                    patient_id=PATIENT_ID,
                ),
                tmp_path / "in" / f"{n}.dcm",
            )
        subprocess.run(
            [storescu, "-aec", "FACADE", "+sd", "127.0.0.1", str(dicom_port), str(tmp_path / "in")],
            env={**os.environ, "TCP_NODELAY": "1"},
            check=True,
            capture_output=True,
            timeout=60,
        )
        found = httpx.get(
            f"{base}/fhir/ImagingStudy",
            params={"identifier": f"urn:dicom:uid|urn:oid:{study}", "patient.identifier": "x"},
            headers={"Prefer": "handling=lenient", **auth},
            timeout=10,
        ).json()
        assert found["total"] == 1 and found["entry"][0]["resource"]["numberOfInstances"] == 3
        httpx.get(f"{base}/fhir/Patient", params={"name": "Secretname"}, headers=auth, timeout=10)  # PHI
        # the settle worker publishes the study's permanent version once it has been quiet for 1 s
        wait_until(
            lambda: (
                len(
                    httpx.get(f"{base}/fhir/ImagingStudy/{study}/_history", headers=auth, timeout=5)
                    .json()
                    .get("entry", [])
                )
                == 1
                and _settled(settings, study)
            ),
            timeout=20,
        )
        assert "facade_index_rows" not in httpx.get(f"{base}/metrics", timeout=5).text
        metrics = httpx.get(f"{base}/metrics", headers=auth, timeout=5).text
        assert 'facade_index_rows{level="instances"} 3' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    events = {r.get("event") for r in records}
    assert {"dicom.listening", "http.listening", "c_store.stored", "facade.stopped"} <= events
    text = log.read_text()
    for secret in (PATIENT_NAME, "Secretname", PATIENT_ID, access_token):
        assert secret not in text
    # the one audit trail, written up to the stop: the C-STORE association and the HTTP requests
    trail = _audit_trail(settings)
    (association,) = [e for e in trail if e.source == "dimse"]
    assert (association.outcome, association.client_id) == ("released", "STORESCU")
    assert association.counts == {"stored": 3, "refused": 0, "failed": 0}
    assert {("fhir", "search", "allowed"), ("auth", "token", "allowed")} <= {
        (e.source, e.action, e.outcome) for e in trail
    }
    assert not any("Secretname" in e.path for e in trail)


def _audit_trail(settings: Settings) -> list[AuditEventRow]:
    db = Database(make_engine(settings.resolved_database_url()))
    try:
        return AuditStore(db).events()
    finally:
        db.dispose()


def _settled(settings: Settings, study: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT provisional FROM fhir_resource WHERE res_id = :id"), {"id": study}
            ).scalar() in (False, 0)  # SQLite answers 0
    finally:
        engine.dispose()


def test_db_upgrade_command(empty_database_url: str, tmp_path: Path) -> None:
    env = {"FACADE_DATA_DIR": str(tmp_path / "data"), "FACADE_DATABASE_URL": empty_database_url}
    for _ in range(2):  # creates the schema, then idempotent
        done = run_cli(env, "db", "upgrade")  # in process: tests/facade/test_cli.py starts the command
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stderr.splitlines()[-1])["revision"] == head_revision()
