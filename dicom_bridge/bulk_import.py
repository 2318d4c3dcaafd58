"""Bulk import: files, folders and DICOMDIR file-sets -> the shared ingest path (PS3.10, PS3.3 F).

Decisions (the CLI help and README describe them to users):
- Named paths are imported whatever their name; inside folders, entries whose name
  starts with "." are skipped (`.DS_Store`, macOS `._*` resource forks, `.git`), as
  are the folders in `skip` (the facade's own data directory) and anything that is
  not a regular file (FIFOs, sockets, devices: reading them could block).
- Symbolic links are followed, to files and to folders; a folder already visited
  (same device and inode) is not entered again, so link loops end. A file reached
  twice (two links, a folder walk and a DICOMDIR record) is imported once.
- A DICOMDIR (a file named DICOMDIR, or any file whose Media Storage SOP Class is
  Media Storage Directory Storage) is not imported itself: the files its in-use
  records reference are, resolved relative to its folder (case-insensitively, and
  with ISO 9660 ";1" versions, as CD-ROMs are often mounted in lower case).
- Each file is copied in 1 MiB chunks into a file of `Ingest.staging` and handed to
  `Ingest.store`; one bad file (not DICOM, truncated, unreadable, refused) is
  counted with its reason and the import goes on. `Unavailable` (no room, a staging
  area that cannot be written, database down) stops it: every further file would fail
  the same way. Files in flight finish; the rest are counted as not imported.
- Files are ingested on `workers` pool threads while the calling thread walks,
  counts and reports; so Ctrl-C lands in the caller, never inside an ingest call
  (files in flight finish, then the summary). One worker is the default: importing
  2,000 small files is CPU-bound (parsing, hashing, SQLAlchemy under the GIL), and
  more workers were 5-10 % slower on SQLite (writers serialise on its lock); on
  PostgreSQL two workers were ~13 % faster.
- Logs carry counts, reasons and UIDs, never paths (folder and file names often
  hold patient names). Rejected paths are returned to the caller, which shows them
  on the user's terminal only.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from mapping.dicom.part10 import peek_file_meta
from storage.errors import DomainError, Unavailable
from storage.usecases.ingest import Ingest, Source

log = logging.getLogger(__name__)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # PS3.4 Annex F / PS3.10
CHUNK = 1 << 20
DEFAULT_WORKERS = 1  # see the module docstring
_IMPORT = Source("import")
_INVALID_FILE_ID = "\x00invalid"  # no file name can hold NUL

Outcome = Literal["stored", "duplicate", "replaced", "rejected", "dicomdir"]
Progress = Callable[[int, int], None]  # (files done, files known so far)


@dataclass
class ImportSummary:
    """What happened; `reasons` and counts are PHI-free, `rejected_paths` is for the user's terminal."""

    stored: int = 0
    duplicate: int = 0
    replaced: int = 0
    rejected: int = 0
    dicomdirs: int = 0  # DICOMDIR files read (not imported themselves)
    not_imported: int = 0  # files left (or failing with Unavailable) when the import stopped
    stopped: str | None = None  # why the import stopped early (PHI-free), None when it ran to the end
    reasons: list[tuple[str, int]] = field(default_factory=list)  # most frequent first
    rejected_paths: list[tuple[Path, str]] = field(default_factory=list)  # the first `max_rejected_paths`

    @property
    def imported(self) -> int:
        return self.stored + self.duplicate + self.replaced


@dataclass(frozen=True)
class _Result:
    path: Path
    outcome: Outcome
    reason: str | None = None
    references: tuple[Path, ...] = ()  # DICOMDIR: the files it names
    stop: str | None = None  # Unavailable: why the import must stop


class _Tally:
    """The work list and the counts; used by the coordinating thread only."""

    def __init__(self, max_paths: int) -> None:
        self.pending: deque[Path] = deque()
        self.done = 0
        self.stopped: str | None = None
        self._seen: set[tuple[int, int]] = set()
        self._counts: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._paths: list[tuple[Path, str]] = []
        self._max_paths = max_paths

    def add(self, path: Path) -> None:
        """Queue a file unless it (same device and inode) was queued before."""
        try:
            st = path.stat()
        except OSError as exc:
            self.reject(path, _unreadable(exc))
            return
        if (st.st_dev, st.st_ino) not in self._seen:
            self._seen.add((st.st_dev, st.st_ino))
            self.pending.append(path)

    def reject(self, path: Path, reason: str) -> None:
        self.record(_Result(path, "rejected", reason))

    def record(self, result: _Result) -> None:
        self.done += 1
        if result.stop is not None:
            self.stopped = self.stopped or result.stop
            self._counts["not_imported"] += 1
            return
        self._counts[result.outcome] += 1
        if result.outcome == "rejected":
            reason = result.reason or "rejected"
            self._reasons[reason] += 1
            if len(self._paths) < self._max_paths:
                self._paths.append((result.path, reason))
            log.info("bulk_import.rejected", extra={"reason": reason})
        for ref in result.references:
            if ref.name == _INVALID_FILE_ID:
                self.reject(ref.parent, "a DICOMDIR record has an invalid Referenced File ID")
            elif ref.is_file():
                self.add(ref)
            else:
                self.reject(ref, "a file the DICOMDIR refers to is missing")

    def summary(self) -> ImportSummary:
        c = self._counts
        return ImportSummary(
            stored=c["stored"],
            duplicate=c["duplicate"],
            replaced=c["replaced"],
            rejected=c["rejected"],
            dicomdirs=c["dicomdir"],
            not_imported=c["not_imported"] + len(self.pending),
            stopped=self.stopped,
            reasons=self._reasons.most_common(),
            rejected_paths=list(self._paths),
        )


class BulkImport:
    """Import files and folders through `Ingest`; see the module docstring for the rules."""

    def __init__(
        self,
        ingest: Ingest,
        *,
        workers: int = DEFAULT_WORKERS,
        skip: Iterable[Path] = (),
        max_rejected_paths: int = 1000,
    ) -> None:
        self._ingest, self._workers, self._max_paths = ingest, max(1, workers), max_rejected_paths
        self._skip = {(st.st_dev, st.st_ino) for st in (p.stat() for p in skip if p.is_dir())}

    def run(self, paths: Sequence[Path], progress: Progress | None = None) -> ImportSummary:
        """Import everything under `paths`; returns when done, stopped (Unavailable) or interrupted."""
        started = time.perf_counter()
        tally = _Tally(self._max_paths)
        try:
            for found in self._walk(paths, tally.reject):
                tally.add(found)
        except KeyboardInterrupt:
            tally.stopped = "interrupted"
        log.info("bulk_import.started", extra={"files": len(tally.pending)})
        in_flight: set[Future[_Result]] = set()
        with ThreadPoolExecutor(self._workers, thread_name_prefix="import") as pool:
            while True:
                try:
                    while tally.stopped is None and tally.pending and len(in_flight) < self._workers * 2:
                        in_flight.add(pool.submit(self._import_one, tally.pending.popleft()))
                    if progress is not None:
                        progress(tally.done, tally.done + len(tally.pending) + len(in_flight))
                    if not in_flight:
                        break
                    finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        tally.record(future.result())
                except KeyboardInterrupt:  # let the files in flight finish, then report
                    tally.stopped = "interrupted"
        summary = tally.summary()
        facts = {
            "stored": summary.stored,
            "duplicate": summary.duplicate,
            "replaced": summary.replaced,
            "rejected": summary.rejected,
            "files": tally.done,
            "ms": round((time.perf_counter() - started) * 1000),
        }
        if summary.stopped:
            log.warning("bulk_import.stopped", extra=facts | {"reason": summary.stopped})
        else:
            log.info("bulk_import.finished", extra=facts)
        return summary

    def _walk(self, paths: Sequence[Path], reject: Callable[[Path, str], None]) -> Iterator[Path]:
        """Regular files under `paths`, in a stable order; directories entered once each."""
        entered: set[tuple[int, int]] = set()
        for root in paths:
            yield from self._visit(root, named=True, entered=entered, reject=reject)

    def _visit(
        self, path: Path, *, named: bool, entered: set[tuple[int, int]], reject: Callable[[Path, str], None]
    ) -> Iterator[Path]:
        try:
            st = path.stat()  # follows symbolic links
        except OSError as exc:
            reject(path, _unreadable(exc))
            return
        if stat.S_ISREG(st.st_mode):
            yield path
            return
        if not stat.S_ISDIR(st.st_mode):
            if named:
                reject(path, "not a regular file or folder")
            return
        key = (st.st_dev, st.st_ino)
        if key in entered or key in self._skip:
            return
        entered.add(key)
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            reject(path, f"the folder cannot be read ({_strerror(exc)})")
            return
        for name in names:
            if not name.startswith("."):
                yield from self._visit(path / name, named=False, entered=entered, reject=reject)

    def _import_one(self, path: Path) -> _Result:
        """Runs on a worker thread: one file -> one outcome (a DICOMDIR -> its references)."""
        try:
            return self._import_file(path)
        except _Unreadable as exc:
            return _Result(path, "rejected", _unreadable(exc.cause))
        except Unavailable as exc:
            return _Result(path, "rejected", str(exc), stop=str(exc))
        except DomainError as exc:
            return _Result(path, "rejected", str(exc))
        except Exception:  # a bug: one file must not end a long import; the log has the traceback
            log.exception("bulk_import.failed")
            return _Result(path, "rejected", "internal error (see the log)")

    def _import_file(self, path: Path) -> _Result:
        try:
            src = path.open("rb")
        except OSError as exc:
            raise _Unreadable(exc) from exc
        with src:
            head = _read(src)
            if path.name.upper() == "DICOMDIR" or media_storage_sop_class(head) == MEDIA_STORAGE_DIRECTORY:
                return self._dicomdir(path)
            with self._ingest.staging() as staging:  # copied in 1 MiB chunks: memory stays flat
                chunk = head
                while chunk:
                    staging.write(chunk)
                    chunk = _read(src)
                stored = self._ingest.store(staging, _IMPORT)
        return _Result(path, stored.outcome)

    def _dicomdir(self, path: Path) -> _Result:
        try:
            refs = dicomdir_references(path)
        except (
            InvalidDicomError,
            ValueError,
            KeyError,
            AttributeError,
            TypeError,
            EOFError,
            struct.error,
        ) as exc:
            return _Result(path, "rejected", f"the DICOMDIR cannot be read ({type(exc).__name__})")
        return _Result(path, "dicomdir", references=tuple(refs))


def dicomdir_references(path: Path) -> list[Path]:
    """Files named by the in-use records of a DICOMDIR (PS3.3 F.3.2.2 Referenced File ID (0004,1500)).

    A file ID that would leave the DICOMDIR's folder yields `<folder>/_INVALID_FILE_ID`, never
    read, only reported; raises ValueError when the file is no DICOMDIR.
    """
    ds = dcmread(path, force=False)
    if "DirectoryRecordSequence" not in ds:
        raise ValueError("no Directory Record Sequence")
    root, listings = path.resolve().parent, _Listings()  # a linked DICOMDIR: its real folder
    found: list[Path] = []
    for record in ds.DirectoryRecordSequence:
        if record.get("RecordInUseFlag", 0xFFFF) == 0:  # inactive record (retired, still written)
            continue
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
        if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts):
            found.append(root / _INVALID_FILE_ID)
            continue
        found.append(listings.resolve(root, parts))
    return found


class _Listings:
    """Case-insensitive lookup of file IDs (CS, upper case) on media mounted in lower case."""

    def __init__(self) -> None:
        self._cache: dict[Path, dict[str, str]] = {}

    def resolve(self, root: Path, parts: list[str]) -> Path:
        current = root
        for part in parts:
            exact = current / part
            if exact.exists():
                current = exact
                continue
            names = self._cache.get(current)
            if names is None:
                try:
                    names = {_media_name(n): n for n in os.listdir(current)}
                except OSError:
                    names = {}
                self._cache[current] = names
            current = current / names.get(part.upper(), part)
        return current


def _media_name(name: str) -> str:
    """'im0001.;1' -> 'IM0001' (ISO 9660 version suffix and empty extension dropped)."""
    return name.split(";", 1)[0].rstrip(".").upper()


def media_storage_sop_class(head: bytes) -> str | None:
    """(0002,0002) from the file meta of a Part 10 file's first bytes; None when not found."""
    try:
        return peek_file_meta(head).sop_class_uid
    except InvalidDicomError:
        return None


class _Unreadable(Exception):
    """Reading the source file failed (as opposed to writing the staged copy)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


def _read(src: BinaryIO) -> bytes:
    try:
        return src.read(CHUNK)
    except OSError as exc:
        raise _Unreadable(exc) from exc


def _strerror(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__  # never str(exc): it quotes the path


def _unreadable(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "the file cannot be read (permission denied)"
    return f"the file cannot be read ({_strerror(exc)})"
