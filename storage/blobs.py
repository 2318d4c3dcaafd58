"""Blob store: the bytes of each instance exactly as received.

Keys are relative paths built by `instance_key` from validated UIDs and a
content hash, so a crafted UID can never name a file outside the store, and a
replacement never overwrites the bytes that the committed index still points
to (a crash orphans a blob, never a row).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from mapping.dicom.uid import valid_uid
from storage.errors import Invalid, NotFound, Unavailable, no_room

_KEY = re.compile(r"^[0-9.]{1,64}/[0-9.]{1,64}/[0-9.]{1,64}\.[0-9a-f]{16}\.dcm$")


def instance_key(study_uid: str, series_uid: str, sop_uid: str, sha256: str) -> str:
    """The blob key of one version of one instance."""
    for uid in (study_uid, series_uid, sop_uid):
        if not valid_uid(uid):
            raise Invalid("a UID is not a valid DICOM UID")
    return f"{study_uid}/{series_uid}/{sop_uid}.{sha256[:16]}.dcm"


class BlobStore(Protocol):
    """Where instance bytes live. `FileBlobStore` now; an S3-compatible store later."""

    def staging_dir(self) -> Path:
        """A directory for files on their way in; `put_file` from here is a rename."""
        ...

    def put_file(self, key: str, src: Path) -> bool:
        """Take ownership of `src` and store it under `key`; durable on return.

        True when this call created the blob; False when `key` already held it (keys hold the
        content hash, so the same bytes): a caller undoing a failed store deletes only its own."""
        ...

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """Read the stored bytes."""
        ...

    def size(self, key: str) -> int: ...

    def free_bytes(self) -> int:
        """Space left for new blobs."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob; a missing blob is not an error."""
        ...

    def clean_staging(self, before: float) -> int:
        """Remove staged files last written before `before` (epoch seconds); how many."""
        ...


class FileBlobStore:
    """Files under `root`, written with temp file, fsync, rename and directory fsync."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._staging = self.root / ".staging"
        self._staging.mkdir(parents=True, exist_ok=True)

    def staging_dir(self) -> Path:
        return self._staging

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise Invalid("malformed blob key")
        return self.root / key

    def put_file(self, key: str, src: Path) -> bool:
        dest = self.path(key)
        try:
            existed = dest.exists()
            created = _make_dirs(dest.parent, stop=self.root)
            _fsync_file(src)
            try:
                os.rename(src, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_in(src, dest)
            _fsync_dir(dest.parent)
            for directory in created:
                _fsync_dir(directory.parent)
            return not existed
        except OSError as exc:
            if no_room(exc):
                raise Unavailable("no room left in the blob store") from exc
            raise

    def _copy_in(self, src: Path, dest: Path) -> None:
        """Across file systems: copy into staging, fsync, rename, then drop the source."""
        fd, tmp = tempfile.mkstemp(dir=self._staging, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
                shutil.copyfileobj(inp, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        src.unlink(missing_ok=True)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            f = self.path(key).open("rb")
        except FileNotFoundError as exc:
            raise NotFound("instance bytes are missing from the blob store") from exc
        with f:
            yield f

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def clean_staging(self, before: float) -> int:
        removed = 0
        for entry in os.scandir(self._staging):
            try:
                if (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < before
                ):
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:  # taken by its owner meanwhile
                continue
        return removed


def _make_dirs(directory: Path, *, stop: Path) -> list[Path]:
    """mkdir -p, returning the directories created (outermost first) so their parents get fsynced."""
    missing: list[Path] = []
    d = directory
    while d != stop and not d.exists():
        missing.append(d)
        d = d.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
            created.append(d)
        except FileExistsError:
            pass
    return created


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
