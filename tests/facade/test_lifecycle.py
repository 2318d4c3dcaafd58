"""One lifecycle: listeners and workers started and stopped in one place, the audit flushed after
the listeners stopped, a listener that cannot listen stopping those already started."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
import uvicorn

from dicom_bridge.ae import AeConfig, storage_ae
from facade.http import build_http_app
from facade.lifecycle import Lifecycle
from facade.listeners import DicomListener, HttpListener
from facade.wiring import Services
from facade.workers import Periodic
from storage.audit.store import AuditStore


def http_listener(services: Services, port: int = 0) -> HttpListener:
    config = uvicorn.Config(
        build_http_app(services), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    return HttpListener(config, url="http://127.0.0.1")


def dicom_listener() -> DicomListener:
    def start():  # type: ignore[no-untyped-def]
        return storage_ae(AeConfig()).start_server(("127.0.0.1", 0), block=False, evt_handlers=[])

    return DicomListener(start)


def test_stop_flushes_the_audit_of_requests_answered_until_then(services: Services) -> None:
    http = http_listener(services)
    flush = Periodic("audit-flush", 3600.0, services.audit.flush, run_at_stop=True)  # never on time
    lifecycle = Lifecycle([dicom_listener(), http], [flush])
    runner = threading.Thread(target=lifecycle.run)
    runner.start()
    try:
        assert lifecycle.running.wait(20)
        answer = httpx.get(f"http://127.0.0.1:{http.port}/fhir/ImagingStudy", timeout=10)
        assert answer.status_code == 401
    finally:
        lifecycle.request_stop()
        runner.join(30)
    assert not runner.is_alive()
    (event,) = AuditStore(services.db).events()
    assert (event.source, event.action, event.status, event.outcome) == ("fhir", "search", 401, "refused")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{http.port}/healthz", timeout=5)


def test_a_listener_that_cannot_listen_stops_those_started(services: Services) -> None:
    runs: list[str] = []
    dicom = dicom_listener()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        lifecycle = Lifecycle(
            [dicom, http_listener(services, taken.getsockname()[1])],
            [Periodic("last", 3600.0, lambda: runs.append("last"), run_at_stop=True)],
        )
        with pytest.raises(SystemExit) as exited:
            lifecycle.run()
    assert exited.value.code not in (0, None)
    assert runs == ["last"]  # the workers were stopped too (their last run made)
    assert dicom._server is not None
    port = dicom._server.server_address[1]
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the DICOM listener started first was stopped
