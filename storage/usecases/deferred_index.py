"""Deferred indexing: an instance is acknowledged once its bytes are held durably, and one thread
indexes what is held, many instances per transaction (group commit across associations).

Used by C-STORE (`Ingest.accept`); STOW-RS and import index before they answer (`Ingest.store`).
The crash argument, in full in docs/architecture.md:
- the acknowledgement follows `BlobStore.hold_slot` (written in place into a slot whose name was
  durable beforehand; the held mark and the data in one fsync) or `BlobStore.hold` (file fsynced,
  renamed into `.held/`, directory fsynced). What a crash can take is a file never acknowledged;
- the indexer links each held file under its blob key (directories fsynced), commits the index
  rows, and only then releases (unlinks) the held file; a crash anywhere in between leaves it held;
- on start, before the DICOM listener opens, every held file is indexed again (`recover`): the key
  holds the content hash and the index recognises the same bytes, so doing it twice is harmless.
Refusals that depend on the index are decided before the acknowledgement (`admit`): against the
committed index, and against what is held but not yet indexed in this process. An acknowledged
instance the index would still refuse (two processes taking the first instances of one study for
two patients at the same moment) is kept with a `patient_mismatch` row; one it cannot take at all
(its series stored in another study meanwhile) stays held and is logged, never deleted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection

from mapping.dicom.facts import InstanceHeader, same_patient
from storage.blobs import BlobStore
from storage.db import Database
from storage.dicom_index.writer import (
    OTHER_PATIENT,
    SERIES_ELSEWHERE,
    Arrival,
    Batch,
    Indexed,
    MismatchPolicy,
    index_instance,
)
from storage.errors import Conflict

log = logging.getLogger(__name__)

BATCH = 128  # instances per index transaction at most
LINGER = 0.05  # seconds a batch may wait for more instances before it is indexed
_GONE_KEPT = 1024  # UIDs indexed lately, remembered for `admit`s in progress (then pruned)
_RETRY_AFTER = 1.0  # seconds: the database or the store failed a batch; it stays held meanwhile


@dataclass(frozen=True)
class Held:
    """An acknowledged instance waiting for the index."""

    path: Path  # the held file
    header: InstanceHeader
    arrival: Arrival


@dataclass
class _Pending:
    """Studies and series held in this process and not yet indexed: what `admit` checks besides the
    committed index. Counted, so that the last indexed instance removes the entry."""

    studies: dict[str, tuple[str | None, str | None, int]]  # study UID -> Patient ID, system, count
    series: dict[str, tuple[str, int]]  # series UID -> study UID, count
    gone: dict[str, int] = field(default_factory=dict)  # UID -> the commit that indexed its last

    def left_since(self, h: InstanceHeader, commit: int) -> bool:
        """Whether the instance's study or series left this map (indexed) after `commit`."""
        return max(self.gone.get(h.study.study_uid, -1), self.gone.get(h.series.series_uid, -1)) > commit

    def forget_gone(self, before: int) -> None:
        self.gone = {uid: commit for uid, commit in self.gone.items() if commit >= before}

    def conflict(self, h: InstanceHeader, policy: MismatchPolicy, *, indexed: bool) -> str | None:
        """`indexed`: the study is in the committed index, whose patient decided already."""
        series = self.series.get(h.series.series_uid)
        if series is not None and series[0] != h.study.study_uid:
            return SERIES_ELSEWHERE
        study = None if indexed else self.studies.get(h.study.study_uid)
        if study is not None and policy != "accept" and not same_patient(h.patient, study[0], study[1]):
            return OTHER_PATIENT
        return None

    def add(self, h: InstanceHeader) -> None:
        pid, system, count = self.studies.get(
            h.study.study_uid, (h.patient.patient_id, h.patient.id_system, 0)
        )
        self.studies[h.study.study_uid] = (pid, system, count + 1)
        study, n = self.series.get(h.series.series_uid, (h.study.study_uid, 0))
        self.series[h.series.series_uid] = (study, n + 1)

    def remove(self, h: InstanceHeader, commit: int | None = None) -> None:
        """`commit`: the one that indexed it (None: withdrawn, never indexed)."""
        pid, system, count = self.studies[h.study.study_uid]
        if count > 1:
            self.studies[h.study.study_uid] = (pid, system, count - 1)
        else:
            del self.studies[h.study.study_uid]
            if commit is not None:
                self.gone[h.study.study_uid] = commit
        study, n = self.series[h.series.series_uid]
        if n > 1:
            self.series[h.series.series_uid] = (study, n - 1)
        else:
            del self.series[h.series.series_uid]
            if commit is not None:
                self.gone[h.series.series_uid] = commit


class DeferredIndex:
    """The queue of held instances and the thread that indexes them."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        policy: MismatchPolicy,
        *,
        on_indexed: Callable[[InstanceHeader, Indexed], None] = lambda h, i: None,
    ) -> None:
        self._db, self._blobs, self._policy, self._on_indexed = db, blobs, policy, on_indexed
        self._cond = threading.Condition()
        self._queue: list[Held] = []
        self._pending = _Pending({}, {})
        self._submitted = self._indexed = 0  # instances, counted since start
        self._draining = 0  # callers of `drain` waiting
        self._commits = 0  # batches committed
        self._reading: Counter[int] = Counter()  # `admit`s reading the index, by the commit they follow
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._lingering = False  # the indexer lets a batch grow: only a full one need wake it

    def admit(self, h: InstanceHeader, check_index: Callable[[InstanceHeader], bool]) -> None:
        """Refuse (Conflict) what the index would refuse, counting what is held here; else reserve
        the instance's study and series until it is indexed (`submit`) or given up (`withdraw`).
        `check_index` refuses as the committed index stands, and says whether it has the study."""
        while True:
            with self._cond:
                commits = self._commits
                self._reading[commits] += 1
            try:
                indexed = check_index(h)  # the committed index, read outside the lock
            finally:
                with self._cond:
                    self._reading[commits] -= 1
                    if not self._reading[commits]:
                        del self._reading[commits]
            with self._cond:
                if self._pending.left_since(h, commits):
                    continue  # its study or series left the map since the read, into the index
                reason = self._pending.conflict(h, self._policy, indexed=indexed)
                if reason is not None:
                    raise Conflict(reason)
                self._pending.add(h)
                return

    def withdraw(self, h: InstanceHeader) -> None:
        """An admitted instance that was not held after all (its bytes could not be kept)."""
        with self._cond:
            self._pending.remove(h)

    def submit(self, held: Held) -> None:
        """Index `held` (admitted, its bytes held) in a coming batch."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deferred-index", daemon=True)
                self._thread.start()
            self._queue.append(held)
            self._submitted += 1
            if not self._lingering or len(self._queue) >= BATCH:
                self._cond.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before this call is indexed; False on timeout."""
        with self._cond:
            target = self._submitted
            self._draining += 1
            self._cond.notify_all()  # no lingering now
            try:
                return self._cond.wait_for(lambda: self._indexed >= target, timeout)
            finally:
                self._draining -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Index what is queued (up to `timeout`), then stop; what is left stays held for `recover`."""
        self.drain(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def index_now(self, batch: list[Held]) -> None:
        """Index `batch` in this thread (recovery at start); raises what the database raises."""
        self._index(batch)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return
                self._linger()
                batch = self._queue[:BATCH]
            try:
                self._index(batch)
            except Exception:  # the database or the store failed: the batch stays held and queued
                log.exception("ingest.deferred_failed", extra={"count": len(batch)})
                with self._cond:
                    if self._stopping:
                        return  # left held, for `recover` at the next start
                    self._cond.wait(_RETRY_AFTER)
                continue
            with self._cond:
                del self._queue[: len(batch)]
                self._commits += 1
                for held in batch:
                    self._pending.remove(held.header, self._commits)
                if len(self._pending.gone) > _GONE_KEPT:  # what no `admit` in progress can ask about
                    self._pending.forget_gone(min(self._reading, default=self._commits))
                self._indexed += len(batch)
                self._cond.notify_all()

    def _linger(self) -> None:
        """Let a batch grow for up to LINGER (fewer commits and directory fsyncs, each shared by
        more instances), unless it is full, someone waits for the index (`drain`) or we stop. No
        answer waits for this: C-STORE answers once an instance is held."""
        deadline = time.monotonic() + LINGER
        self._lingering = True
        try:
            while len(self._queue) < BATCH and not self._stopping and not self._draining:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
        finally:
            self._lingering = False

    def _index(self, batch: list[Held]) -> None:
        created = self._blobs.store_held([(held.arrival.blob_key, held.path) for held in batch])
        results = self._db.transact_core(lambda conn: self._all(conn, batch))
        for held, made, indexed in zip(batch, created, results, strict=True):
            if indexed is None:
                if made:
                    self._blobs.delete(held.arrival.blob_key)
                continue  # stays held, logged by `_one`
            if indexed.superseded_key is not None and indexed.superseded_key != held.arrival.blob_key:
                self._blobs.delete(indexed.superseded_key)
            self._blobs.release(held.path)
            self._on_indexed(held.header, indexed)

    def _all(self, conn: Connection, batch: list[Held]) -> list[Indexed | None]:
        rows = Batch()  # a new one per attempt: `transact_core` runs this again after a lost race
        rows.prefetch(conn, [held.header.instance.sop_uid for held in batch])
        results = [self._one(conn, held, rows) for held in batch]
        rows.flush(conn)
        return results

    def _one(self, conn: Connection, held: Held, rows: Batch) -> Indexed | None:
        """Index one held instance: acknowledged, so a patient mismatch is kept (recorded) whatever
        the policy; None when the index cannot take it at all. A refusal writes nothing (it is
        decided before the first write), so the rest of the batch goes on."""
        try:
            return index_instance(conn, held.header, held.arrival, self._policy, batch=rows)
        except Conflict:
            pass
        try:
            return index_instance(conn, held.header, held.arrival, "accept", batch=rows)
        except Conflict:
            log.error(
                "ingest.held_unindexable",
                extra={"sop_instance_uid": held.header.instance.sop_uid, "held": held.path.name},
            )
            return None
