"""Held files (`FileBlobStore.hold`): durable on return, the held directory's fsync shared by
the associations that hold at once (group commit)."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from storage.blobs import FileBlobStore

HOLDERS = 8


def test_concurrent_holds_share_the_directory_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `hold` returns only after an fsync of the held directory that began after its own
    rename ended; holders arriving during an fsync wait for the next one together, so there are
    fewer directory fsyncs than holds (the system calls are timed, not replaced)."""
    store = FileBlobStore(tmp_path / "blobs")
    real_fsync, real_rename = os.fsync, os.rename
    syncs: list[tuple[float, float]] = []
    renamed: dict[str, float] = {}

    def timed_fsync(fd: int) -> None:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            real_fsync(fd)
            return
        began = time.monotonic()
        time.sleep(0.02)  # a slow disk: holders pile up behind the fsync under way
        real_fsync(fd)
        syncs.append((began, time.monotonic()))

    def timed_rename(src: str | Path, dst: str | Path) -> None:
        real_rename(src, dst)
        renamed[str(dst)] = time.monotonic()

    monkeypatch.setattr(os, "fsync", timed_fsync)
    monkeypatch.setattr(os, "rename", timed_rename)
    staged = []
    for n in range(HOLDERS):
        path = store.staging_dir() / f"{n}.dcm"
        path.write_bytes(b"x" * 100)
        staged.append(path)
    store.hold(staged[0], "00")  # the store's own directory is made (and synced) first
    before = len(syncs)
    returned: dict[str, float] = {}
    barrier = threading.Barrier(HOLDERS - 1)

    def hold(path: Path) -> None:
        barrier.wait()
        held = store.hold(path, "ab")
        returned[str(held)] = time.monotonic()

    threads = [threading.Thread(target=hold, args=(p,)) for p in staged[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(returned) == HOLDERS - 1
    for held, at in returned.items():
        assert Path(held).read_bytes() == b"x" * 100
        assert any(began >= renamed[held] and ended <= at for began, ended in syncs), held
    assert len(syncs) - before < HOLDERS - 1
    store.close()
