"""Slots (`FileBlobStore.slot`, `hold_slot`): a C-STORE data set written in place into a file whose
name is already durable, held with one fsync; after a crash only the slots marked held count."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from facade.wiring import Services
from storage.blobs import SLOTS, FileBlobStore
from storage.dicom_index.models import InstanceRow
from storage.usecases.ingest import Expect, Source
from tests.dicom_factory import make_instance, new_uid, write


def test_a_slot_is_held_with_one_fsync_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slot's name was made durable with the others (one directory fsync for SLOTS of them);
    holding it is one fsync of the file itself: no rename, no directory fsync."""
    store = FileBlobStore(tmp_path / "blobs")
    real_fsync = os.fsync
    synced: list[str] = []

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def rename(src: object, dst: object) -> None:
        raise AssertionError("a held slot is not renamed")

    monkeypatch.setattr(os, "fsync", fsync)
    slot = store.slot()
    assert slot is not None
    assert synced == ["dir", "dir"]  # the store's held directory made (its parent synced), the slots'
    assert slot.parent.parent == store.root / ".held"
    assert len(list(slot.parent.glob("*.slot"))) == SLOTS
    slot.write_bytes(b"x" * 100)
    synced.clear()
    monkeypatch.setattr(os, "rename", rename)
    assert store.hold_slot(slot, "4d52") == slot
    assert synced == ["file"]
    assert slot.read_bytes() == b"x" * 100
    store.close()


def test_a_store_gone_leaves_only_its_held_slots(services: Services, tmp_path: Path) -> None:
    """A crash leaves slots held (acknowledged), slots written but never held (a data set cut
    short, or refused) and empty ones: recovery indexes the first, with the calling AE title the
    mark keeps, and deletes the others."""
    gone = FileBlobStore(services.blobs.root)
    study, series = new_uid(), new_uid()
    datasets = [make_instance(study_uid=study, series_uid=series) for _ in range(3)]
    files = [write(ds, tmp_path / f"{n}.dcm") for n, ds in enumerate(datasets)]
    held, written, empty = (gone.slot() for _ in range(3))
    assert held is not None and written is not None and empty is not None
    held.write_bytes(files[0].read_bytes())
    gone.hold_slot(held, b"MODALITY".hex())
    written.write_bytes(files[1].read_bytes())  # complete, never acknowledged
    staged = services.ingest.staging_dir() / "c.dcm"  # and one held the other way, later
    staged.write_bytes(files[2].read_bytes())
    renamed = gone.hold(staged, "")
    gone.close()
    assert services.blobs.held() == [held, renamed]
    assert sorted(p.name for p in held.parent.iterdir()) == sorted([held.name, renamed.name, ".lock"])
    assert services.ingest.recover() == 2
    with services.db.read() as s:
        rows = {r.sop_uid: r.calling_ae for r in s.scalars(select(InstanceRow))}
    sop = [str(ds.SOPInstanceUID) for ds in datasets]
    assert rows == {sop[0]: "MODALITY", sop[2]: None}
    assert services.ingest.recover() == 0
    assert not (services.blobs.root / ".held" / held.parent.name).exists()


def test_c_store_holds_in_a_slot(services: Services, tmp_path: Path) -> None:
    """`Ingest.staging(in_place=True)` (the C-STORE doors): the instance is held in its slot, then
    indexed and released like any held file."""
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "a.dcm")
    with services.ingest.staging(in_place=True) as staging:
        assert staging.in_slot
        staging.write(path.read_bytes())
        services.ingest.accept(staging, Source("c-store", "MODALITY"), Expect())
    assert services.ingest.drain(10)
    with services.db.read() as s:
        row = s.scalars(select(InstanceRow)).one()
    assert row.calling_ae == "MODALITY"
    assert services.blobs.size(row.blob_key) == path.stat().st_size
    assert [p for p in (services.blobs.root / ".held").glob("*/*") if p.stat().st_size] == []


def test_no_slots_where_the_file_system_keeps_no_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def setxattr(*args: object) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", setxattr)
    store = FileBlobStore(tmp_path / "blobs")
    assert store.slot() is None
    assert store.slot() is None
    assert list((tmp_path / "blobs" / ".held").glob("*/*.slot")) == []
    store.close()
