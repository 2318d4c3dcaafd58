"""Blob store: the bytes of each instance exactly as received.

Keys are relative paths built by `instance_key` from validated UIDs and a
content hash, so a crafted UID can never name a file outside the store, and a
replacement never overwrites the bytes that the committed index still points
to (a crash orphans a blob, never a row).
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Protocol

from mapping.dicom.uid import valid_uid
from storage.errors import Invalid, NotFound, Unavailable, no_room

_LABEL = re.compile(r"^[0-9a-f]{0,64}$")
SLOTS = 32  # slots made at once (one directory fsync)
_SLOT = ".slot"
_HELD_MARK = "user.facade.held"  # on a slot held in place: `<time ns>.<label>`
_PROBE = "user.facade.probe"
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

    def hold(self, src: Path, label: str) -> Path:
        """Take ownership of the complete file `src` and keep it, durably on return, among the held
        files (acknowledged, not yet stored under its key); `label`: a few characters of [0-9a-f]
        kept in its name."""
        ...

    def slot(self) -> Path | None:
        """An empty file whose name is already durable among this store's held files, for one
        arriving instance to be written into in place: `hold_slot` then costs one fsync (no rename,
        no directory fsync). None where this store has none (then stage elsewhere and `hold`)."""
        ...

    def hold_slot(self, slot: Path, label: str) -> Path:
        """`hold` for a file from `slot`, written in place and complete: marks it held (with
        `label`) and makes it durable; on return it is among the held files like any other."""
        ...

    def held(self) -> list[Path]:
        """The held files no live store holds any more (their process stopped or crashed): what
        is left for recovery, oldest first. A store's own held files are never among them; the
        directories of stores gone that hold nothing are removed."""
        ...

    def store_held(self, items: list[tuple[str, Path]]) -> list[bool]:
        """Store each held file under its key too (the held file stays until `release`), all
        durable on return; per item, whether this call created the blob (see `put_file`)."""
        ...

    def release(self, held: Path) -> None:
        """Forget a held file (its blob is stored, or it was never acknowledged)."""
        ...

    def close(self) -> None:
        """Stop holding: what this store still holds is left for a later store's recovery."""
        ...


class FileBlobStore:
    """Files under `root`, written with temp file, fsync, rename and directory fsync. Held files
    live in `.held/<owner>/`, a directory per store (per process), locked (flock) while the store
    lives, so that recovery takes only what no live process holds; `store_held` links each under
    its key.

    Slots: empty files made `SLOTS` at a time in the store's held directory, which is then fsynced
    once, so their names are durable before anything is written into them. `hold_slot` marks a
    slot held with an extended attribute (its label and the time) and fsyncs the file: data, size
    and mark reach the disk in one fsync, and the name needed none. After a crash, a slot with the
    mark is a held file (`held`); one without (empty, partly received, or complete but never
    acknowledged) is deleted. Where the file system keeps no extended attributes there are no slots.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._prefix = f"{self.root}{os.sep}"  # `open` joins strings: pathlib costs ~15 us a call
        self._staging = self.root / ".staging"
        self._staging.mkdir(parents=True, exist_ok=True)
        self._holding = self.root / ".held"
        self._holding.mkdir(exist_ok=True)
        self._own: Path | None = None  # created with its lock on the first `hold`
        self._own_lock: int | None = None
        self._own_sync = _GroupSync(self._holding)  # replaced with the own directory's
        self._own_guard = threading.Lock()
        self._slots: list[Path] = []
        self._slots_kept: bool | None = None  # whether the file system keeps the held mark
        self._slots_guard = threading.Lock()

    def staging_dir(self) -> Path:
        return self._staging

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise Invalid("malformed blob key")
        return self.root / key

    def put_file(self, key: str, src: Path) -> bool:
        dest = self.path(key)
        with _room():
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
        if not _KEY.match(key):
            raise Invalid("malformed blob key")
        try:
            f = builtins.open(self._prefix + key, "rb")  # noqa: SIM115 - closed below, after the yield
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

    def hold(self, src: Path, label: str) -> Path:
        if not _LABEL.match(label):
            raise ValueError("a held file's label is hex digits")
        with _room():
            own = self._own_dir()
            dest = own / f"{time.time_ns():020d}.{uuid.uuid4().hex}.{label}.dcm"
            _fsync_file(src)
            os.rename(src, dest)  # staging and .held share the store's file system
            self._own_sync.changed()
        return dest

    def slot(self) -> Path | None:
        with self._slots_guard:
            if not self._slots and self._slots_kept is not False:
                with _room():
                    self._slots = self._make_slots()
            return self._slots.pop() if self._slots else None

    def _make_slots(self) -> list[Path]:
        own = self._own_dir()
        slots: list[Path] = []
        try:
            for _ in range(SLOTS):
                slot = own / f"{uuid.uuid4().hex}{_SLOT}"
                os.close(os.open(slot, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                slots.append(slot)
            if self._slots_kept is None:
                self._slots_kept = _keeps_marks(slots[0])
                if not self._slots_kept:
                    for slot in slots:
                        slot.unlink()
                    return []
            self._own_sync.changed()
        except OSError:
            for slot in slots:
                slot.unlink(missing_ok=True)
            raise
        return slots

    def hold_slot(self, slot: Path, label: str) -> Path:
        if not _LABEL.match(label):
            raise ValueError("a held file's label is hex digits")
        with _room():
            fd = os.open(slot, os.O_WRONLY)
            try:
                os.setxattr(fd, _HELD_MARK, f"{time.time_ns():020d}.{label}".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        return slot

    def held(self) -> list[Path]:
        found = []
        for owner in sorted(self._holding.iterdir()):
            if not owner.is_dir() or owner == self._own:
                continue
            lock = _try_lock(owner / ".lock")
            if lock is None:
                continue  # a live process's
            try:
                files = [p for p in owner.iterdir() if p.suffix == ".dcm" or (p.suffix == _SLOT and _kept(p))]
                if not files:  # recovered meanwhile, or never held anything: gone with its owner
                    with suppress(OSError):
                        (owner / ".lock").unlink()
                        owner.rmdir()
                found += files
            finally:
                os.close(lock)
        return sorted(found, key=_held_name)

    def close(self) -> None:
        """Let go of this store's held directory (removed when empty): a later store recovers
        whatever is left in it."""
        with self._slots_guard:
            slots, self._slots = self._slots, []
        for slot in slots:
            slot.unlink(missing_ok=True)
        with self._own_guard:
            own, lock, self._own, self._own_lock = self._own, self._own_lock, None, None
        if lock is not None:
            os.close(lock)
        if own is not None:
            with suppress(OSError):  # not empty: left for recovery
                (own / ".lock").unlink()
                own.rmdir()

    def _own_dir(self) -> Path:
        with self._own_guard:
            if self._own is None:
                own = self._holding / uuid.uuid4().hex
                own.mkdir()
                lock = _try_lock(own / ".lock")
                assert lock is not None  # a new directory: nobody else has it
                _fsync_dir(self._holding)
                self._own, self._own_lock, self._own_sync = own, lock, _GroupSync(own)
            return self._own

    def store_held(self, items: list[tuple[str, Path]]) -> list[bool]:
        created, synced = [], set()
        for key, held in items:
            dest = self.path(key)
            for directory in _make_dirs(dest.parent, stop=self.root):
                synced.add(directory.parent)
            try:
                os.link(held, dest)
                created.append(True)
            except FileExistsError:  # the same key: the same bytes (see `instance_key`)
                created.append(False)
            synced.add(dest.parent)
        for directory in sorted(synced, key=lambda d: -len(d.parts)):  # deepest first
            _fsync_dir(directory)
        return created

    def release(self, held: Path) -> None:
        held.unlink(missing_ok=True)


@contextmanager
def _room() -> Iterator[None]:
    """No room left in the store (ENOSPC, EDQUOT) is `Unavailable`; other errors pass."""
    try:
        yield
    except OSError as exc:
        if no_room(exc):
            raise Unavailable("no room left in the blob store") from exc
        raise


def held_label(held: Path) -> str:
    """The label `hold` kept in a held file's name (`<time>.<random>.<label>.dcm`), or `hold_slot`
    in a slot's mark (`<time>.<label>`)."""
    parts = _held_name(held).split(".")
    return parts[2] if len(parts) == 4 else ""


def _held_name(held: Path) -> str:
    """`<time>.<random>.<label>.dcm`: a slot's as if `hold` had named it (held files sort by it)."""
    if held.suffix != _SLOT:
        return held.name
    time_ns, _, label = os.getxattr(held, _HELD_MARK).decode("ascii").partition(".")
    return f"{time_ns}.{held.stem}.{label}.dcm"


def _kept(slot: Path) -> bool:
    """Whether a slot of a store gone was held; one that was not is deleted (never acknowledged)."""
    try:
        os.getxattr(slot, _HELD_MARK)
        return True
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
    slot.unlink(missing_ok=True)
    return False


def _keeps_marks(path: Path) -> bool:
    """Whether the file system keeps extended attributes (`hold_slot`'s mark), tried on `path`."""
    try:
        os.setxattr(path, _PROBE, b"1")
        os.removexattr(path, _PROBE)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    return True


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on `path` (created if need be), or None when
    another holds it. The lock goes with the descriptor, and with the process if it dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


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


class _GroupSync:
    """fsync of one directory, shared by the threads that need it at once (group commit): a
    thread whose change (a rename into it) was made before a running fsync began waits for that
    one and issues none of its own. Several associations of one process hold their instances in
    the same directory; each then waits for at most one fsync after its own."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._cond = threading.Condition()
        self._changes = 0  # changes made in the directory, as counted by `changed`
        self._synced = 0  # of those, how many are durable
        self._syncing = False

    def changed(self) -> None:
        """Return once the change the caller just made in the directory is durable."""
        with self._cond:
            self._changes += 1
            mine = self._changes
            while self._synced < mine:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing, covered = True, self._changes  # made before the fsync begins
                self._cond.release()
                try:
                    _fsync_dir(self._path)
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                self._synced = max(self._synced, covered)


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
