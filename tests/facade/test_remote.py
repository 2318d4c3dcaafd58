"""`facade remote find|retrieve`: against a second facade instance (its own data directory,
database and DICOM listener on 127.0.0.1), in process and once as the console script."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import RLELossless
from sqlalchemy import select

from facade.cli import main
from facade.serve import start_dicom
from facade.settings import Settings
from facade.wiring import Services, build_services
from storage.dicom_index.models import InstanceRow
from storage.usecases.ingest import Source
from tests.conftest import fresh_database
from tests.dicom_factory import make_instance, new_uid, write


@dataclass
class Peer:
    settings: Settings
    services: Services
    port: int
    studies: dict[str, list[str]]  # study UID -> SOP Instance UIDs


def _store(services: Services, folder: Path, ds: Any) -> None:
    path = write(ds, folder / f"{ds.SOPInstanceUID}.dcm")
    staged = services.ingest.staging_dir() / path.name
    shutil.copyfile(path, staged)
    services.ingest.staged(staged, Source("import"))


@pytest.fixture
def peer(backend: str, tmp_path: Path) -> Iterator[Peer]:
    """Another archive, AE title PEER, holding two studies (one of them with an RLE instance)."""
    with fresh_database(backend, tmp_path / "peer-db") as url:
        settings = Settings(
            data_dir=tmp_path / "peer",
            database_url=url,
            dicom_ae_title="PEER",
            dicom_port=0,
            stable_age_seconds=3600,
        )
        services = build_services(settings)
        studies: dict[str, list[str]] = {}
        for n, (pid, modality) in enumerate([("PID-A", "CT"), ("PID-B", "MR")], start=1):
            study, series = new_uid(), new_uid()
            sent = [
                make_instance(
                    study_uid=study,
                    series_uid=series,
                    modality=modality,
                    patient_id=pid,
                    patient_name=f"Remote^Person{n}",
                    instance_number=i,
                    rows=8,
                    columns=8,
                    StudyDescription=f"Remote study {n}",
                )
                for i in (1, 2)
            ]
            rle = make_instance(
                study_uid=study, series_uid=new_uid(), series_number=2, modality=modality, patient_id=pid,
                patient_name=f"Remote^Person{n}", rows=8, columns=8, StudyDescription=f"Remote study {n}",
            )  # fmt: skip
            rle.compress(RLELossless, generate_instance_uid=False)
            sent.append(rle)
            for ds in sent:
                _store(services, tmp_path / "sent", ds)
            studies[study] = [str(ds.SOPInstanceUID) for ds in sent]
        server = start_dicom(settings, services)
        try:
            yield Peer(settings, services, server.server_address[1], studies)
        finally:
            server.shutdown()
            services.close()


@pytest.fixture
def env(
    settings: Settings, services: Services, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Our archive's environment, with PEER registered; the logging the command installs is undone."""
    monkeypatch.setenv("FACADE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FACADE_DATABASE_URL", settings.resolved_database_url())
    services.peers.add("PEER", "127.0.0.1", peer.port)
    root, pynetdicom = logging.getLogger(), logging.getLogger("pynetdicom")
    saved = (root.handlers[:], root.level, pynetdicom.level, warnings.showwarning)
    yield settings
    root.handlers[:], _, _, warnings.showwarning = saved
    root.setLevel(saved[1])
    pynetdicom.setLevel(saved[2])


def instances(services: Services) -> dict[str, bytes]:
    """SOP Instance UID -> the stored file's bytes."""
    with services.db.read() as s:
        keys = {r.sop_uid: r.blob_key for r in s.scalars(select(InstanceRow))}
    found = {}
    for uid, key in keys.items():
        with services.blobs.open(key) as f:
            found[uid] = f.read()
    return found


def test_find_lists_the_studies_with_filters(
    env: Settings, peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["remote", "find", "PEER"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["Study", "UID", "Date", "Patient"]
    assert {line.split()[0] for line in lines[1:]} == set(peer.studies)
    row = next(line for line in lines[1:] if "PID-A" in line)
    assert "Remote^Person1" in row and "CT" in row and "20240305" in row and "Remote study 1" in row
    assert row.split()[-2:] == ["2", "3"]  # series, instances

    assert main(["remote", "find", "PEER", "--patient-id", "PID-B", "--study-date", "20240101-20241231"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "PID-B" in lines[1]
    assert main(["remote", "find", "PEER", "--modality", "CT", "--patient-name", "remote^*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "PID-A" in lines[1]
    assert main(["remote", "find", "PEER", "--accession", "NONE"]) == 0
    assert "no matching studies at PEER" in capsys.readouterr().out


def test_find_series(env: Settings, peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    study = next(iter(peer.studies))
    assert main(["remote", "find", "PEER", "--level", "series", "--study", study]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["Study", "UID", "Series", "UID"]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 2 and {r[0] for r in rows} == {study}
    assert sorted((r[2], r[-1]) for r in rows) == [("1", "2"), ("2", "1")]
    assert main(["remote", "find", "PEER", "--level", "SERIES", "--modality", "MR"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 2 and study not in {r[0] for r in rows}


def test_retrieve_by_c_get(
    env: Settings, services: Services, peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = list(peer.studies)
    assert main(["remote", "retrieve", "PEER", *[a for uid in wanted for a in ("--study", uid)]]) == 0
    captured = capsys.readouterr()
    assert "Retrieved from PEER by C-GET" in captured.out
    for uid in wanted:
        row = next(line for line in captured.out.splitlines() if line.startswith(uid))
        assert row.split()[1:] == ["3", "0", "0", "0"]
    assert "9/9 instances" not in captured.err  # 6 sub-operations in all
    assert "6/6 instances" in captured.err
    ours, theirs = instances(services), instances(peer.services)
    assert set(ours) == set(theirs) == {uid for uids in peer.studies.values() for uid in uids}
    for uid, data in ours.items():
        assert _data_set(data) == _data_set(theirs[uid]), "the data set bytes are as the peer stored them"
    with services.db.read() as s:
        assert {r.received_via for r in s.scalars(select(InstanceRow))} == {"c-get"}
    # again: every instance a duplicate, nothing changes
    assert main(["remote", "retrieve", "PEER", "--study", wanted[0]]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(wanted[0]))
    assert row.split()[1:] == ["0", "3", "0", "0"]


def test_a_study_the_peer_does_not_have(
    env: Settings, services: Services, peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = new_uid()
    assert main(["remote", "retrieve", "PEER", "--study", missing, "--study", next(iter(peer.studies))]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(missing))
    assert "not found at PEER" in row
    assert len(instances(services)) == 3


def test_unknown_and_unreachable_peers(
    env: Settings, services: Services, peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["remote", "find", "NOBODY"]) == 1
    assert "NOBODY is not registered" in capsys.readouterr().err
    assert main(["remote", "retrieve", "NOBODY", "--study", new_uid()]) == 1
    assert "NOBODY is not registered" in capsys.readouterr().err
    with _closed_port() as closed:
        services.peers.add("GONE", "127.0.0.1", closed)
        assert main(["remote", "find", "GONE", "--connect-timeout", "2"]) == 1
    assert "GONE at 127.0.0.1" in (err := capsys.readouterr().err) and "cannot be reached" in err
    services.peers.add("WRONG", "127.0.0.1", peer.port)  # PEER refuses a called AE title not its own
    assert main(["remote", "find", "WRONG"]) == 1
    assert "rejected the association" in capsys.readouterr().err
    assert main(["remote", "find", "PEER", "--study-date", "last week"]) == 1
    assert "--study-date is YYYYMMDD" in capsys.readouterr().err
    assert main(["remote", "retrieve", "PEER", "--study", "1.2.x"]) == 1
    assert "not a UID" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["remote", "find", "PEER", "--timeout", "0"])
    assert "at most 3600 seconds" in capsys.readouterr().err


def test_retrieve_by_c_move_to_ourselves(
    env: Settings,
    services: Services,
    peer: Peer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = env
    study = next(iter(peer.studies))
    with _closed_port() as closed:
        monkeypatch.setenv("FACADE_DICOM_PORT", str(closed))
        assert main(["remote", "retrieve", "PEER", "--study", study, "--move", "--connect-timeout", "2"]) == 1
    assert "does not answer C-ECHO" in capsys.readouterr().err

    ours = start_dicom(settings.model_copy(update={"dicom_port": 0}), services)
    try:
        port = ours.server_address[1]
        monkeypatch.setenv("FACADE_DICOM_PORT", str(port))
        assert main(["remote", "retrieve", "PEER", "--study", study, "--move"]) == 1
        assert "does not know the move destination FACADE" in capsys.readouterr().err
        peer.services.peers.add("FACADE", "127.0.0.1", port)
        assert main(["remote", "retrieve", "PEER", "--study", study, "--move"]) == 0
        out = capsys.readouterr().out
        assert "Moved from PEER to FACADE" in out
        assert next(line for line in out.splitlines() if line.startswith(study)).split()[1:] == [
            "3",
            "0",
            "0",
        ]
    finally:
        ours.shutdown()
    ours_now, theirs = instances(services), instances(peer.services)
    assert set(ours_now) == set(peer.studies[study])
    for uid, data in ours_now.items():
        assert _data_set(data) == _data_set(theirs[uid])


def test_the_console_script(env: Settings, services: Services, peer: Peer) -> None:
    script = Path(sys.executable).parent / "facade"
    study = next(iter(peer.studies))
    run_env = {
        **os.environ,
        "FACADE_DATA_DIR": str(env.data_dir),
        "FACADE_DATABASE_URL": env.resolved_database_url(),
    }
    found = subprocess.run(
        [str(script), "remote", "find", "PEER", "--study", study],
        capture_output=True, text=True, timeout=120, env=run_env, check=False,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert study in found.stdout and "PID-" in found.stdout
    got = subprocess.run(
        [str(script), "remote", "retrieve", "PEER", "--study", study],
        capture_output=True, text=True, timeout=120, env=run_env, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert "3/3 instances" in got.stderr
    assert "Remote^Person" not in got.stderr and "PID-" not in got.stderr, "no PHI in the log"
    assert set(instances(services)) == set(peer.studies[study])


def _data_set(part10: bytes) -> bytes:
    from mapping.dicom.part10 import peek_file_meta

    return part10[peek_file_meta(part10[: 1 << 20]).dataset_offset :]


@contextmanager
def _closed_port() -> Iterator[int]:
    """A port where a connection is refused: bound by this test and not listening, for as long as
    the block runs, so that no other test's server can take it meanwhile (a port merely freed
    was once taken by a parallel worker's server, which then answered)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])
