"""No room in the staging area or for the blob: C-STORE answers 0xA700, STOW-RS 503, import stops;
nothing is indexed, no file stays behind, the service goes on."""

from __future__ import annotations

import gc
import io
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.filewriter import dcmwrite
from sqlalchemy import func, select

from dicom_bridge.ae import AeConfig, storage_ae
from dicom_bridge.bulk_import import BulkImport
from dicom_bridge.storage_scp import StorageScp
from facade.serve import start_dicom
from facade.settings import Settings
from facade.wiring import Services, build_services
from storage.dicom_index.models import InstanceRow
from storage.errors import Unavailable
from tests.dicom_bridge.test_storage_scp import send_raw
from tests.dicom_factory import make_instance, new_uid, write
from tests.smart import bearer, issue_token
from tests.tools import missing


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root: CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        missing("mounting a small tmpfs needs root")
    yield mount
    unmount(mount)


def unmount(mount: Path) -> None:
    """A file the server closes a moment late keeps the mount busy: collect, retry, then detach."""
    for _ in range(50):
        gc.collect()
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture
def small_services(settings: Settings, full_disk: Path) -> Iterator[Services]:
    """Blobs on the small file system, the index where it always was."""
    built = build_services(
        settings.model_copy(
            update={
                "data_dir": full_disk / "data",
                "database_url": settings.resolved_database_url(),
                "min_free_bytes": 256 * 1024,
            }
        )
    )
    yield built
    built.close()


@pytest.fixture
def receive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pynetdicom receives into the system temporary directory: one of the test's own (as TMPDIR
    makes it), on the big file system, so that ingest copies each data set into the small one."""
    directory = tmp_path / "receive"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def test_c_store_answers_out_of_resources(
    small_services: Services, receive_dir: Path, tmp_path: Path
) -> None:
    server = storage_ae(AeConfig()).start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=StorageScp(small_services.ingest).handlers()
    )
    try:
        big = write(
            make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=1024, columns=1024),
            tmp_path / "big.dcm",
        )  # 2 MiB of pixels
        small = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "small.dcm")
        assert send_raw(server.server_address[1], [big, small]) == [0xA700, 0]
    finally:
        server.shutdown()
    with small_services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(InstanceRow)) == 1
    assert list(small_services.ingest.staging_dir().iterdir()) == []
    assert list(receive_dir.iterdir()) == []


def test_stow_answers_503(small_services: Services) -> None:
    import threading

    import uvicorn

    from facade.http import build_http_app

    server = uvicorn.Server(
        uvicorn.Config(build_http_app(small_services), host="127.0.0.1", port=0, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        buffer = io.BytesIO()
        dcmwrite(
            buffer,
            make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=1024, columns=1024),
            enforce_file_format=True,
        )
        body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + buffer.getvalue() + b"\r\n--b--\r\n"
        r = httpx.post(
            f"http://127.0.0.1:{port}/dicomweb/studies",
            content=body,
            timeout=60,
            headers={
                "Content-Type": 'multipart/related; type="application/dicom"; boundary=b',
                **bearer(issue_token(small_services, "system/ImagingStudy.c")),
            },
        )
        assert r.status_code == 503
        assert "no room left in the staging area" in r.text
    finally:
        server.should_exit = True
        thread.join(15)
    assert list(small_services.ingest.staging_dir().iterdir()) == []


def test_import_stops_when_the_staging_area_is_full(small_services: Services, tmp_path: Path) -> None:
    big = write(
        make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=1024, columns=1024),
        tmp_path / "big.dcm",
    )  # 2 MiB: does not fit the 1 MiB file system
    summary = BulkImport(small_services.ingest).run([big])
    assert summary.stopped == "no room left in the staging area"
    assert (summary.stored, summary.not_imported) == (0, 1)
    assert list(small_services.ingest.staging_dir().iterdir()) == []


def test_staging_maps_no_room_and_removes_its_file(small_services: Services) -> None:
    """The use case's staging itself: a write past the end of the disk is Unavailable (no room), and
    leaving the block removes the partial file."""
    with (
        pytest.raises(Unavailable, match="no room left in the staging area"),
        small_services.ingest.staging() as staging,
    ):
        staging.write(b"\0" * (2 << 20))
        staging.close()
    assert list(small_services.ingest.staging_dir().iterdir()) == []


def test_below_the_reserve_c_store_is_refused_while_it_still_can_be(
    small_services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under `facade serve` with TMPDIR in the staging area: pynetdicom receives on the same disk.
    Once free space is below the reserve, instances still arrive but are refused with 0xA700, then
    accepted again when room is made."""
    monkeypatch.setattr(tempfile, "tempdir", str(small_services.ingest.staging_dir()))
    server = storage_ae(AeConfig()).start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=StorageScp(small_services.ingest).handlers()
    )
    filler = small_services.blobs.root / "filler"
    try:
        port = server.server_address[1]
        free = small_services.blobs.free_bytes()
        filler.write_bytes(b"\0" * (free - 200 * 1024))  # leave 200 KiB: below the 256 KiB reserve
        first = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "a.dcm")
        second = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "b.dcm")
        assert send_raw(port, [first]) == [0xA700]
        filler.unlink()
        assert send_raw(port, [second]) == [0]
    finally:
        server.shutdown()
    assert list(small_services.ingest.staging_dir().iterdir()) == []


def test_serve_says_when_data_sets_are_received_on_another_file_system(
    small_services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """pynetdicom receives into the system temporary directory (here on the big file system), the blob
    store is on the small one: every instance will be copied, and `facade serve` says so at start."""
    caplog.set_level(logging.WARNING, logger="facade.serve")
    server = start_dicom(small_services.settings.model_copy(update={"dicom_port": 0}), small_services)
    server.shutdown()
    assert [r.msg for r in caplog.records if r.name == "facade.serve"] == ["dicom.receive_copies"]
