"""Group commit: the write transactions of callers that arrive together run one after another in
one database transaction, each in a savepoint of its own, and are committed together, so that
one commit (on SQLite one fsync of the WAL, on PostgreSQL one WAL flush) and one transaction's
setup serve them all. Each caller returns only once the commit that holds its work is done: an
HL7 ACK sent after `transact` still follows the durable commit of that very message.

No thread of its own: the first caller that finds no batch under way leads one, taking what is
queued (its own work first among them, in the order they came), while the others wait; a caller
alone runs as `Database.transact` would. A work that raises is rolled back to its savepoint and
its exception goes to its caller, the rest of the batch going on. A work that loses a race (a
unique key taken meanwhile, a PostgreSQL deadlock: what `Database.transact` runs again) and a
batch whose commit fails are run again alone, each by its own caller, with `Database.transact`'s
retries: every work must be safe to repeat, as there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from storage.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH = 32  # works per transaction at most


class _Job(Generic[T]):
    def __init__(self, work: Callable[[Session], T]) -> None:
        self.work = work
        self.finished = False
        self.alone = False  # to run again in a transaction of its own
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(self, db: Database, *, batch: int = BATCH) -> None:
        self._db, self._batch = db, batch
        self._cond = threading.Condition()
        self._queue: list[_Job[Any]] = []
        self._leading = False

    def transact(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a write transaction shared with the works queued meanwhile; its result
        once committed (or its exception)."""
        job = _Job(work)
        with self._cond:
            self._queue.append(job)
        while True:
            with self._cond:
                while self._leading and not job.finished:
                    self._cond.wait()
                if job.finished:
                    break
                self._leading = True
                batch, self._queue = self._queue[: self._batch], self._queue[self._batch :]
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if job.alone:
            return self._db.transact(work)
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def _run(self, batch: list[_Job[Any]]) -> None:
        try:
            if len(batch) > 1:
                self._run_batch(batch)
            else:
                self._run_alone(batch[0])  # no savepoint
        finally:
            for job in batch:
                if not job.finished:  # the leader was interrupted: each goes again on its own
                    job.alone = job.finished = True

    def _run_alone(self, job: _Job[Any]) -> None:
        try:
            job.result = self._db.transact(job.work)
        except Exception as exc:
            job.error = exc
        job.finished = True

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        try:
            with self._db.write() as session:
                for job in batch:
                    try:
                        with session.begin_nested():
                            job.result = job.work(session)
                    except (IntegrityError, OperationalError):
                        job.alone = True  # a race lost, or the database failing: alone, with retries
                    except Exception as exc:
                        job.error = exc
        except Exception as exc:  # the commit failed: nothing of the batch is kept
            log.info("db.group_failed", extra={"count": len(batch), "error": type(exc).__name__})
            for job in batch:
                job.alone, job.result, job.error = True, None, None
        for job in batch:
            job.finished = True
