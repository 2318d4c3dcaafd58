"""`facade import PATH…`: bulk import with a progress bar on stderr and a summary on stdout.

The summary (and the first rejected paths) go to the user's terminal, never to the
log: file and folder names often hold patient names. Exit status: 0 all files
imported, 1 some rejected, 2 a path does not exist or the import stopped
(`Unavailable`: no room, database down), 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from dicom_bridge.bulk_import import DEFAULT_WORKERS, BulkImport, ImportSummary
from facade.logs import configure_logging, log_to_file
from facade.settings import Settings
from facade.wiring import build_services
from storage.errors import Unavailable

log = logging.getLogger(__name__)

SHOW_REJECTED = 20  # rejected paths listed in the summary
_TTY_REDRAW = 0.1  # seconds between redraws in place
_PLAIN_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
_BAR = 30
_PUBLISH_ROUNDS = 1000  # of up to 200 studies and patients each


def run_import(
    settings: Settings,
    paths: list[Path],
    *,
    workers: int = DEFAULT_WORKERS,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Import `paths` (files, folders, DICOMDIRs), publish the studies as FHIR, print a summary."""
    out, err = out or sys.stdout, err or sys.stderr
    configure_logging(settings.log_level)
    log_file = None
    if err.isatty():  # the terminal shows the bar and the summary; the JSON records go to a file
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        log_file = settings.data_dir.resolve() / "logs" / f"import-{stamp}.jsonl"
        log_to_file(log_file)
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        print(f"facade import: no such file or folder: {terminal_text(path)}", file=err)
    if missing:
        return 2
    started = time.monotonic()
    try:
        services = build_services(settings)
    except Unavailable as exc:
        print(f"facade import: {exc}", file=err)
        return 2
    bar = ProgressBar(err)
    bar.attach_to_logging()
    try:
        services.publisher.endpoint()
        summary = BulkImport(services.ingest, workers=workers, skip=[settings.data_dir]).run(
            paths, progress=bar.update
        )
        bar.finish()
        published = publish_pending(services.publisher.pending, err)
    except Unavailable as exc:  # before the first file (the endpoint write): nothing was imported
        bar.finish()
        print(f"facade import: {exc}", file=err)
        return 2
    finally:
        bar.detach_from_logging()
        services.db.dispose()
    print_summary(summary, out, seconds=time.monotonic() - started, published=published)
    if log_file is not None:
        print(f"Log: {log_file}", file=out)
    if summary.stopped == "interrupted":
        return 130
    if summary.stopped:
        return 2
    return 1 if summary.rejected else 0


def publish_pending(pending: Callable[[], int], err: TextIO, *, command: str = "facade import") -> int | None:
    """Publish every changed study and patient now (not after the stable age), in batches."""
    total = 0
    try:
        for _ in range(_PUBLISH_ROUNDS):  # bounded: a running `facade serve` may keep adding studies
            done = pending()
            total += done
            if not done:
                break
    except Unavailable as exc:
        print(
            f"{command}: the FHIR resources were not published yet ({exc}); "
            "reads and `facade serve` publish them later",
            file=err,
        )
        return None
    return total


def print_summary(s: ImportSummary, out: TextIO, *, seconds: float, published: int | None) -> None:
    """The closing summary; rejected paths are shown here only (the terminal is not a log)."""
    files = s.imported + s.rejected + s.not_imported + s.dicomdirs
    head = f"Import stopped ({s.stopped})" if s.stopped else "Import finished"
    print(f"{head}: {files} files in {seconds:.1f} s", file=out)
    rows = [
        ("stored", s.stored),
        ("duplicate", s.duplicate),
        ("replaced", s.replaced),
        ("rejected", s.rejected),
    ]
    if s.not_imported:
        rows.append(("not imported", s.not_imported))
    width = max(len(str(n)) for _, n in rows)
    for label, n in rows:
        print(f"  {label:<13}{n:>{width}}", file=out)
    if s.dicomdirs:
        print(f"  (read {s.dicomdirs} DICOMDIR{'s' if s.dicomdirs > 1 else ''})", file=out)
    if published:
        print(f"  FHIR resources published: {published}", file=out)
    if s.reasons:
        print("Rejections by reason:", file=out)
        for reason, n in s.reasons:
            print(f"  {n:>{width}}  {reason}", file=out)
        shown = s.rejected_paths[:SHOW_REJECTED]
        print(f"Rejected files ({len(shown)} of {s.rejected} shown):", file=out)
        for path, reason in shown:
            print(f"  {terminal_text(path)}: {reason}", file=out)


def terminal_text(path: Path) -> str:
    """A path safe to print: undecodable bytes and control characters escaped."""
    text = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class ProgressBar:
    """Files done / total, rate and ETA on `stream`: redrawn in place on a terminal, else a line
    every `_PLAIN_EVERY` seconds; the last state is always written by `finish`."""

    def __init__(
        self, stream: TextIO, clock: Callable[[], float] = time.monotonic, *, unit: str = "files"
    ) -> None:
        self._stream, self._clock, self._unit = stream, clock, unit
        self._tty = stream.isatty()
        self._started = self._last = clock()
        self._state = (0, 0)
        self._drawn = False
        self._filter = _ClearLine(self)

    def update(self, done: int, total: int) -> None:
        self._state = (done, total)
        now = self._clock()
        if now - self._last >= (_TTY_REDRAW if self._tty else _PLAIN_EVERY):
            self._last = now
            self._draw()

    def finish(self) -> None:
        if self._state[1]:
            self._draw()
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
        self._drawn = False

    def clear(self) -> None:
        """Wipe the line drawn in place, so that a log record does not run into it."""
        if self._tty and self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False

    def attach_to_logging(self) -> None:
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._filter)

    def detach_from_logging(self) -> None:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._filter)

    def line(self) -> str:
        done, total = self._state
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = done / elapsed
        share = done / total if total else 1.0
        if done >= total:
            when = f"in {_clock_time(elapsed)}"
        else:
            when = f"ETA {_clock_time((total - done) / rate) if rate > 0 else '--:--'}"
        filled = round(share * _BAR)
        return (
            f"[{'#' * filled}{'.' * (_BAR - filled)}] {done}/{total} {self._unit} "
            f"{share:4.0%}  {rate:.0f} {self._unit}/s  {when}"
        )

    def _draw(self) -> None:
        if self._tty:
            self._stream.write(f"\r{self.line()}\x1b[K")
            self._drawn = True
        else:
            self._stream.write(f"{self.line()}\n")
        self._stream.flush()


class _ClearLine(logging.Filter):
    """Lets every record through, after wiping the progress line it would otherwise append to."""

    def __init__(self, bar: ProgressBar) -> None:
        super().__init__()
        self._bar = bar

    def filter(self, record: logging.LogRecord) -> bool:
        self._bar.clear()
        return True


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
