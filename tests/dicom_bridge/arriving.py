"""Where an arriving data set is written, for tests that check what a refusal or an abort leaves."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from facade.wiring import Services


def arriving(services: Services) -> list[Path]:
    """Files that hold some of an arriving data set: in the staging area, or slots among the held
    files (`BlobStore.slot`; the unused ones are empty)."""
    files = [*services.ingest.staging_dir().iterdir(), *(services.blobs.root / ".held").glob("*/*.slot")]
    written = []
    for path in files:
        with suppress(FileNotFoundError):  # stored or removed meanwhile
            if path.stat().st_size:
                written.append(path)
    return written


def unused_slot(path: Path) -> bool:
    """An empty slot among the held files, made ahead for a data set yet to arrive."""
    return path.suffix == ".slot" and path.parent.parent.name == ".held" and path.stat().st_size == 0
