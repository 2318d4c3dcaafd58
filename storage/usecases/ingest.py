"""Ingest: the one path by which C-STORE, STOW-RS and bulk import store an instance.

Order of work, so that an acknowledgement always means "durable":
1. parse and fingerprint the staged Part 10 file (bulk data never loaded);
2. rename it into the blob store and fsync (a crash now orphans a blob, never leaves
   a row without bytes). The key holds the content hash, so a resend of identical
   bytes renames identical bytes over themselves: harmless, and cheaper than a
   separate lookup before every instance;
3. one index transaction: the same SOP Instance UID with the same data set bytes is
   an idempotent success (nothing changes); otherwise patient, study, series,
   instance, counters, and the change marks that make the FHIR resources
   republish. Different bytes under a known SOP Instance UID replace the stored
   instance (newest wins) and the replacement is recorded. An instance of a stored study
   belongs to that study's patient when it names no Patient ID or the same one; one that names
   another patient is refused (Conflict), or kept with a `patient_mismatch` row in this same
   transaction when the policy is "accept" (FACADE_PATIENT_MISMATCH). If the transaction refuses
   the instance, the blob that step 2 created (never one that was already there) is removed;
4. only after the commit may the adapter answer success; the superseded blob is
   removed last.

Staging is ours too: every door (C-STORE, STOW-RS, import) asks `Ingest.staging()` for the
file an arriving instance is written to, fills it (or has it `adopt` a file its protocol stack
wrote), and hands it to `Ingest.store` inside that block. Leaving the block removes whatever
was not stored, whatever the outcome; a staging area that cannot be written (no room: ENOSPC,
EDQUOT) is `Unavailable`, the refusal every door already maps (0xA700, 503, import stops).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

from pydicom import Dataset
from sqlalchemy import Connection

from mapping.dicom.facts import InstanceHeader, IssuerResolver, header_from_dataset
from mapping.dicom.part10 import FileMeta
from mapping.dicom.uid import valid_uid
from storage.blobs import BlobStore, held_label, instance_key
from storage.clock import utcnow
from storage.db import Database
from storage.dicom_file import Part10, read_part10
from storage.dicom_index.writer import Arrival, FitCheck, Indexed, MismatchPolicy, Outcome, index_instance
from storage.errors import Conflict, Invalid, Unavailable, no_room
from storage.usecases.deferred_index import BATCH, DeferredIndex, Held
from storage.usecases.structured_reports import StructuredReports

log = logging.getLogger(__name__)

_BUFFER = 1 << 13  # a staged file's write buffer (given: Python would ask the file whether it is a tty)

Via = Literal["c-store", "stow-rs", "import", "c-get"]  # c-get: our C-GET SCU (`facade remote`)


@dataclass(frozen=True)
class Source:
    via: Via
    calling_ae: str | None = None


@dataclass(frozen=True)
class Expect:
    """What the protocol already said about the instance; a data set that disagrees is refused."""

    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_uid: str | None = None


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    instance_pk: int


@dataclass(frozen=True)
class PatientIdentity:
    """How a Patient ID is qualified when the instance names no universal issuer."""

    default_system: str
    issuer_system: IssuerResolver


class Ingest:
    """Store one instance durably, then index it."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        identity: PatientIdentity,
        now: Callable[[], datetime] = utcnow,
        *,
        min_free_bytes: int = 0,
        patient_mismatch: MismatchPolicy = "refuse",
        reports: StructuredReports | None = None,
    ) -> None:
        """`reports`: map structured reports and PDFs to FHIR in the index transaction."""
        self._db, self._blobs, self._identity, self._now = db, blobs, identity, now
        self._fits = FitCheck(db)
        self._reports = reports
        self._min_free = min_free_bytes
        self._mismatch: MismatchPolicy = patient_mismatch
        self._deferred = DeferredIndex(db, blobs, patient_mismatch, on_indexed=self._indexed)

    def staging_dir(self) -> Path:
        """Where staged files live (for the health check and tests; doors use `staging`)."""
        return self._blobs.staging_dir()

    @contextmanager
    def staging(self, *, in_place: bool = False) -> Iterator[Staging]:
        """A new file in the staging area (on the blob store's file system, so that storing it is
        a rename) for one arriving instance: fill it, then `store` it inside the block. On
        leaving, whatever was not stored is removed; no room (ENOSPC, EDQUOT) is `Unavailable`.
        `in_place`: for `accept`, a slot among the held files where the blob store has them
        (`BlobStore.slot`), so that holding it costs one fsync."""
        try:
            slot = self._blobs.slot() if in_place else None
        except OSError as exc:
            raise _unwritable(exc) from exc
        staging = Staging(self._blobs.staging_dir(), slot=slot)
        try:
            yield staging
        except OSError as exc:
            if no_room(exc):
                raise Unavailable("no room left in the staging area") from exc
            raise
        finally:
            staging.discard()

    def store(self, staging: Staging, source: Source, expect: Expect = Expect()) -> Stored:
        """Store the instance written to `staging` (which this call takes over, stored or not)."""
        staging.close()
        return self._staged(staging.path, source, expect)

    def staged(self, path: Path, source: Source, expect: Expect = Expect()) -> Stored:
        """Store the Part 10 file at `path`, which this call consumes (moved or deleted)."""
        with self.staging() as staging:
            staging.adopt(path)
            return self.store(staging, source, expect)

    def accept(self, staging: Staging, source: Source, expect: Expect = Expect()) -> None:
        """`store`, acknowledged sooner: on return the bytes are held durably and every refusal the
        index would make has been made; the index follows in a batch (`deferred_index`), and
        `drain` waits for it. For C-STORE, whose peer waits for each answer. A result document (an
        SR or PDF, mapped to FHIR in its index transaction) is stored as `store` does."""
        staging.close()
        path = staging.path
        h, part10 = self._read(path, expect)
        if self._reports is not None and self._reports.may_map(h.instance.sop_class_uid):
            self._staged(path, source, expect, (h, part10))
            return
        self._deferred.admit(h, self._check_fits)
        label = (source.calling_ae or "").encode().hex()
        try:
            if staging.in_slot:
                held = self._blobs.hold_slot(path, label)
                staging.keep()
            else:
                held = self._blobs.hold(path, label)
        except BaseException:
            self._deferred.withdraw(h)
            raise
        self._deferred.submit(Held(held, h, self._arrival(h, part10, source)))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every instance `accept` took before this call is indexed (a C-STORE peer
        releasing its association finds them all in the index); False on timeout."""
        return self._deferred.drain(timeout)

    def close(self) -> None:
        """Index what `accept` took (for a while), then stop; the rest is recovered on start."""
        self._deferred.close()
        self._blobs.close()

    def recover(self) -> int:
        """Index every held instance (acknowledged before a stop or crash, not yet indexed); run
        at start, before the DICOM listener opens. How many; an unreadable one stays held (logged)."""
        batch = []
        for path in self._blobs.held():
            calling_ae = _label_ae(path)
            try:
                h, part10 = self._read(path, Expect())
            except (Invalid, Conflict) as exc:
                log.error("ingest.held_unreadable", extra={"held": path.name, "reason": str(exc)})
                continue
            batch.append(Held(path, h, self._arrival(h, part10, Source("c-store", calling_ae))))
        for start in range(0, len(batch), BATCH):
            self._deferred.index_now(batch[start : start + BATCH])
        if batch:
            log.info("ingest.recovered", extra={"count": len(batch)})
        return len(batch)

    def _check_fits(self, h: InstanceHeader) -> bool:
        return self._fits(h, self._mismatch)

    def _read(self, path: Path, expect: Expect) -> tuple[InstanceHeader, Part10]:
        # Refuse while there is still room: on a disk that is truly full, receiving the next
        # data set already fails inside the protocol stack, before any refusal can be sent.
        if self._blobs.free_bytes() < self._min_free:
            raise Unavailable("the archive is nearly full (free space is below the configured minimum)")
        part10 = read_part10(path)
        h = header_from_dataset(
            part10.header,
            default_system=self._identity.default_system,
            issuer_system=self._identity.issuer_system,
        )
        _check(h, expect)
        _check_file_meta(part10.meta, h.instance.sop_uid)
        return h, part10

    def _arrival(self, h: InstanceHeader, part10: Part10, source: Source) -> Arrival:
        return Arrival(
            blob_key=instance_key(h.study.study_uid, h.series.series_uid, h.instance.sop_uid, part10.sha256),
            size=part10.size,
            sha256=part10.sha256,
            via=source.via,
            calling_ae=source.calling_ae,
            now=self._now(),
        )

    def _staged(
        self, path: Path, source: Source, expect: Expect, read: tuple[InstanceHeader, Part10] | None = None
    ) -> Stored:
        h, part10 = read or self._read(path, expect)
        document = (
            self._reports.prepare(h.instance.sop_class_uid, path) if self._reports is not None else None
        )
        arrival = self._arrival(h, part10, source)
        key = arrival.blob_key
        created = self._blobs.put_file(key, path)
        try:
            indexed = self._db.transact_core(lambda conn: self._index(conn, h, arrival, document))
        except (Conflict, Invalid):
            # Refused inside the transaction, so it rolled back: nothing of this attempt may stay
            # on disk. A blob that was already there (same key, same bytes) is indexed and stays.
            # Other failures keep the blob: a lost connection during COMMIT may have committed, and
            # an orphaned blob is harmless where a row without bytes is not.
            if created:
                self._blobs.delete(key)
            raise
        if indexed.superseded_key is not None and indexed.superseded_key != key:
            self._blobs.delete(indexed.superseded_key)
        self._indexed(h, indexed, source.via)
        if indexed.instance_pk is None:
            raise AssertionError("an instance indexed alone has its key read back")
        return Stored(
            indexed.outcome,
            h.instance.sop_class_uid,
            h.instance.sop_uid,
            h.series.series_uid,
            h.study.study_uid,
            indexed.instance_pk,
        )

    @staticmethod
    def _indexed(h: InstanceHeader, indexed: Indexed, via: str = "c-store") -> None:
        if indexed.mismatch:  # UIDs only: the Patient IDs are in the patient_mismatch row
            log.warning(
                "ingest.patient_mismatch",
                extra={"sop_instance_uid": h.instance.sop_uid, "study_uid": h.study.study_uid, "via": via},
            )
        if indexed.outcome == "replaced":
            log.info("ingest.replaced", extra={"sop_instance_uid": h.instance.sop_uid, "via": via})

    def _index(
        self, conn: Connection, h: InstanceHeader, arrival: Arrival, document: Dataset | None
    ) -> Indexed:
        indexed = index_instance(conn, h, arrival, self._mismatch)
        if document is not None and self._reports is not None and indexed.outcome != "duplicate":
            self._reports.publish(conn, document, h.study.study_uid, h.study.accession, arrival.now)
        return indexed


class Staging:
    """One arriving instance's file in the staging area, made by `Ingest.staging`.

    The file is created on the first write (owner-only, as blobs are), or by `adopt`: a C-STORE
    pays no file creation besides pynetdicom's own. Every failure to write it is `Unavailable` (the
    staging area fails every instance alike; the peer may retry), with a PHI-free reason: never the
    path, which may carry a name.
    """

    def __init__(self, directory: Path, *, slot: Path | None = None) -> None:
        """`slot`: written in place into this empty file among the held files (`BlobStore.slot`)."""
        # 122 random bits: no name is taken twice
        self.path = slot if slot is not None else directory / f"{uuid.uuid4().hex}.dcm"
        self.in_slot = slot is not None  # the slot's own file, filled in place (not replaced)
        self._file: BinaryIO | None = None
        self._done = False  # closed or adopted: nothing more is written
        self._kept = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise ValueError("the staged file is closed")
        try:
            if self._file is None:
                self._file = self._open()
            self._file.write(data)
        except OSError as exc:
            raise _unwritable(exc) from exc

    def adopt(self, src: Path) -> None:
        """Take over a complete file written elsewhere, which is consumed either way. pynetdicom's
        chunked receive writes into the system temporary directory (`tempfile.gettempdir()`, which we
        leave alone: it is process-wide): a rename when that is on the staging area's file system,
        else a copy in 1 MiB chunks (fsynced with the blob by `store`), memory bounded either way."""
        if self._done or self._file is not None:
            raise ValueError("only a fresh staged file can adopt one")
        self._done = True
        try:
            try:
                os.rename(src, self.path)
                self.in_slot = False  # another file under the slot's name, which is not durable
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            with src.open("rb") as inp, self._open() as out:
                shutil.copyfileobj(inp, out, 1 << 20)
        except OSError as exc:
            raise _unwritable(exc) from exc
        finally:
            src.unlink(missing_ok=True)

    def close(self) -> None:
        """Flush and close the file (`Ingest.store` does); writing ends here. Nothing written: an
        empty file (refused as not DICOM, like any other empty body)."""
        if self._done:
            return
        self._done = True
        try:
            file, self._file = self._file, None
            if file is None:
                file = self._open()
            file.close()  # closes the descriptor even when the flush fails
        except OSError as exc:
            raise _unwritable(exc) from exc

    def keep(self) -> None:
        """The file stays where it is (held in place): `discard` leaves it."""
        self._kept = True

    def discard(self) -> None:
        """Remove the file unless it was stored (renamed into the blob store) or kept meanwhile."""
        file, self._file, self._done = self._file, None, True
        if file is not None:
            with suppress(OSError):
                file.close()
        if not self._kept:
            self.path.unlink(missing_ok=True)

    def _open(self) -> BinaryIO:
        if self.in_slot:  # the slot exists (empty): its name is already durable
            return os.fdopen(os.open(self.path, os.O_WRONLY | os.O_TRUNC), "wb", _BUFFER)
        return _create(self.path)


def _label_ae(held: Path) -> str | None:
    """The calling AE title a held file's label keeps (see `accept`), None when there is none."""
    try:
        return bytes.fromhex(held_label(held)).decode() or None
    except ValueError:
        return None


def _create(path: Path) -> BinaryIO:
    """A new file, readable by its owner only (the blob store keeps it as it is)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb", _BUFFER)


def _unwritable(exc: OSError) -> Unavailable:
    if no_room(exc):
        return Unavailable("no room left in the staging area")
    return Unavailable(f"the staging area cannot be written ({exc.strerror or type(exc).__name__})")


def _check(h: InstanceHeader, expect: Expect) -> None:
    if h.missing:
        raise Invalid(f"the data set lacks {', '.join(h.missing)}")
    for name, uid in (
        ("SOP Instance UID", h.instance.sop_uid),
        ("SOP Class UID", h.instance.sop_class_uid),
        ("Study Instance UID", h.study.study_uid),
        ("Series Instance UID", h.series.series_uid),
    ):
        if not valid_uid(uid):
            raise Invalid(f"the {name} is not a valid DICOM UID")
    if expect.sop_instance_uid and expect.sop_instance_uid != h.instance.sop_uid:
        raise Invalid("the SOP Instance UID of the data set differs from the request")
    if expect.sop_class_uid and expect.sop_class_uid != h.instance.sop_class_uid:
        raise Invalid("the SOP Class UID of the data set differs from the request")
    if expect.study_uid and expect.study_uid != h.study.study_uid:
        raise Conflict("the Study Instance UID of the data set differs from the target study")


def _check_file_meta(meta: FileMeta, sop_instance_uid: str) -> None:
    """PS3.10 7.1: Media Storage SOP Instance UID (0002,0003) is the data set's SOP Instance UID
    (0008,0018). A file that names another instance in its meta header is refused on every path
    (C-STORE, STOW-RS, import), as a C-STORE whose data set disagrees with its request is."""
    meta_uid = meta.sop_instance_uid
    if meta_uid and meta_uid != sop_instance_uid:
        raise Invalid("the Media Storage SOP Instance UID of the file meta differs from the SOP Instance UID")
