"""`facade destination` and `facade outbox` through the command line, and the outbox worker of
`facade serve` delivering to a real MLLP receiver as soon as a report change commits."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from facade.cli import main
from facade.serve import outbox_worker
from facade.settings import Settings, oru_destination_list
from facade.wiring import Services, build_services
from mapping.hl7.oru import OruProfile
from tests.hl7_peer import Received, Receiver, ack
from tests.storage.test_outbox import patient, report


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FACADE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FACADE_DATABASE_URL", settings.resolved_database_url())
    return settings


def test_destination_add_list_remove(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["destination", "list"]) == 0
    assert "no destinations" in capsys.readouterr().out
    assert main(["destination", "add", "RIS", "ris.example.org", "2575"]) == 0
    assert main(["destination", "add", "EHR", "10.0.0.9", "6661", "--version", "2.3.1", "--text", "ft"]) == 0
    assert main(["destination", "add", "LAB", "h", "1", "--charset", "utf-8", "--receives", "oru"]) == 0
    capsys.readouterr()
    assert main(["destination", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "host", "port", "version", "text", "charset", "receives", "enabled"]
    assert [line.split() for line in lines[1:]] == [
        ["EHR", "10.0.0.9", "6661", "2.3.1", "ft", "ASCII", "oru,ack", "yes"],
        ["LAB", "h", "1", "2.5.1", "tx", "UNICODE", "UTF-8", "oru", "yes"],
        ["RIS", "ris.example.org", "2575", "2.5.1", "tx", "ASCII", "oru,ack", "yes"],
    ]
    assert main(["destination", "add", "Y", "h", "2575", "--receives", "adt"]) == 1
    assert "receives" in capsys.readouterr().err
    assert main(["destination", "add", "RIS", "other", "2575"]) == 1
    assert "registered already" in capsys.readouterr().err
    assert main(["destination", "add", "X", "h", "2575", "--charset", "KOI8-R"]) == 1
    assert "charset" in capsys.readouterr().err
    assert main(["destination", "remove", "RIS"]) == 0
    assert main(["destination", "remove", "RIS"]) == 1
    assert "not registered" in capsys.readouterr().err


def test_outbox_list_and_retry_a_dead_letter(
    env: Settings, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    refuse = {"on": True}

    def answer(message: Received) -> bytes:
        code = "AE" if refuse["on"] else "AA"
        return ack(message.control_id, code, "unknown patient")

    receiver = Receiver(answer=answer).start()
    worker = outbox_worker(env, services)
    try:
        assert main(["destination", "add", "RIS", "127.0.0.1", str(receiver.port)]) == 0
        worker.start()
        now = datetime.now(UTC)
        with services.db.write() as session:
            services.store.put(session, patient(1), now=now)
            assert services.outbox.report_changed(session, None, report(1, "final"), now) == 1
        receiver.wait_for(1, 10)
        _until(lambda: services.outbox.count("dead") == 1)
        capsys.readouterr()
        assert main(["outbox", "list", "--state", "dead"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split()[:4] == ["id", "destination", "state", "tries"]
        assert out[1].split()[1:4] == ["RIS", "dead", "1"] and out[1].endswith("AE: 204 unknown patient")
        pk = out[1].split()[0]
        refuse["on"] = False
        assert main(["outbox", "retry"]) == 2
        assert main(["outbox", "retry", pk]) == 0  # a separate process: the worker finds it by polling
        assert "1 message(s) pending again" in capsys.readouterr().out
        got = receiver.wait_for(2, 10)
        assert got[0].control_id == got[1].control_id
        _until(lambda: services.outbox.count("sent") == 1)
        assert main(["outbox", "retry", "--all-dead"]) == 0
        assert "0 message(s)" in capsys.readouterr().out
    finally:
        worker.stop()
        receiver.stop()


def test_the_worker_sends_as_soon_as_the_change_commits(settings: Settings, services: Services) -> None:
    receiver = Receiver().start()
    worker = outbox_worker(settings.model_copy(), services)
    services.outbox.add_destination("RIS", "127.0.0.1", receiver.port, OruProfile())
    worker._interval = 3600  # only the wake after commit can deliver in time
    worker.start()
    try:
        latencies = []
        for n in range(5):
            now = datetime.now(UTC)
            with services.db.write() as session:
                services.store.put(session, patient(n), now=now)
                services.outbox.report_changed(session, None, report(n, "final"), now)
            committed = time.monotonic()
            receiver.wait_for(n + 1, 10)
            latencies.append(time.monotonic() - committed)
        assert max(latencies) < 2
    finally:
        worker.stop()
        receiver.stop()


def test_configured_destinations_parse() -> None:
    assert oru_destination_list(" ris:2575 , EHR=[::1]:6661,") == [
        ("ris:2575", "ris", 2575),
        ("EHR", "::1", 6661),
    ]
    for bad in ("ris", "ris:port", "=:1", "ris:0"):
        with pytest.raises(ValueError, match="host:port"):
            oru_destination_list(bad)


def _until(condition: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)
    raise AssertionError("not reached in time")


def test_facade_serve_delivers_to_its_configured_destination(settings: Settings, tmp_path: Path) -> None:
    """`facade serve` (a process of its own) with FACADE_ORU_DESTINATIONS: a report change that
    another process commits reaches the receiver, and a SIGTERM stops it cleanly."""
    from tests.facade.test_serve import free_port, serve_env

    receiver = Receiver().start()
    env = serve_env(
        settings, free_port(), free_port(), FACADE_ORU_DESTINATIONS=f"RIS=127.0.0.1:{receiver.port}"
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facade.cli", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    services = build_services(settings)  # this process: the report write, as another facade would
    try:
        _until(lambda: [d.name for d in services.outbox.destinations()] == ["RIS"], 60)
        now = datetime.now(UTC)
        with services.db.write() as session:
            services.store.put(session, patient(7), now=now)
            assert services.outbox.report_changed(session, None, report(7, "final"), now) == 1
        [got] = receiver.wait_for(1, 30)
        assert got.patient == "PAT-7" and got.status == "F"
        _until(lambda: services.outbox.count("sent") == 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        services.close()
        receiver.stop()
    assert "PAT-7" not in log.read_text() and "Test7" not in log.read_text()


def test_a_paused_destination_queues_nothing_and_holds_what_waits(
    env: Settings, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    from hl7_interface.mllp_client import MllpClient

    receiver = Receiver().start()
    client = MllpClient(connect_timeout=2, ack_timeout=5)
    try:
        assert main(["destination", "add", "RIS", "127.0.0.1", str(receiver.port)]) == 0
        now = datetime.now(UTC)
        with services.db.write() as session:
            services.store.put(session, patient(1), now=now)
            assert services.outbox.report_changed(session, None, report(1, "final"), now) == 1
        assert main(["destination", "disable", "RIS"]) == 0
        assert "disabled RIS" in capsys.readouterr().out
        with services.db.write() as session:  # nothing is queued for a paused destination
            assert services.outbox.report_changed(session, None, report(2, "final"), now) == 0
        assert services.outbox.deliver_due(client).sent == 0  # what was queued waits
        assert services.outbox.count("pending") == 1
        assert main(["destination", "list"]) == 0
        assert capsys.readouterr().out.splitlines()[1].split()[-1] == "no"
        assert main(["destination", "enable", "RIS"]) == 0
        assert services.outbox.deliver_due(client).sent == 1
        assert [m.patient for m in receiver.wait_for(1, 10)] == ["PAT-1"]
        assert main(["destination", "disable", "NOPE"]) == 1
        assert "not registered" in capsys.readouterr().err
    finally:
        client.close()
        receiver.stop()
