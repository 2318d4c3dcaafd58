"""Audit: record who did what, with what outcome, from where, through any door (HTTP requests
now, DICOM associations, HL7 messages over MLLP), in one trail.

Recording costs the caller a queue put, never a database commit: a request or an association
is never slowed or failed by its audit. `flush()` writes what is queued in one transaction; a
periodic worker of the serving process calls it (every half second) and once more when the
process stops, so a crash loses at most the last batch. No PHI: an event holds who (a SMART
client and fhirUser, or a calling AE title), the action, the outcome, the peer address, counts
and resource types, ids or UIDs; never query strings, names, birth dates, patient IDs,
accession numbers, data sets or message bodies.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.audit.store import AuditStore

log = logging.getLogger(__name__)

CAPACITY = 100_000  # events held between flushes at most; past that they are dropped (and logged)


@dataclass(frozen=True)
class AuditEvent:
    """One audited event, of any protocol.

    HTTP: source fhir | dicomweb | wado | auth, method, path, status, outcome allowed | refused |
    failed. DIMSE: source "dimse", action "association", outcome released | aborted | rejected,
    `client_id` the calling AE title, `counts` {"stored", "refused", "failed"}.
    """

    source: str
    action: str
    outcome: str
    client_id: str | None = None  # the SMART client, or the calling AE title
    user: str | None = None  # fhirUser
    patient: str | None = None  # the patient in context (a resource id, never an identifier)
    peer: str | None = None  # the peer's network address
    method: str = ""
    path: str = ""
    status: int = 0
    counts: Mapping[str, int] | None = None
    detail: str | None = None


class Audit:
    """The audit trail: `record` from any thread, `flush` from one worker."""

    def __init__(self, store: AuditStore, *, now: Callable[[], datetime], capacity: int = CAPACITY) -> None:
        self._store, self._now = store, now
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        """Queue `event`, stamped now; never blocks and never raises (a full queue drops it)."""
        try:
            self._queue.put_nowait(_row(event, self._now()))
        except queue.Full:
            log.error("audit.dropped", extra={"reason": "queue full", "source": event.source})

    def flush(self) -> int:
        """Write everything queued so far in one transaction; how many rows. When the write
        fails the rows go back to the queue for the next flush, and this returns 0."""
        with self._lock:
            rows: list[dict[str, Any]] = []
            while True:
                try:
                    rows.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not rows:
                return 0
            try:
                self._store.append(rows)
            except Exception:
                log.exception("audit.write_failed", extra={"count": len(rows)})
                for row in rows:
                    try:
                        self._queue.put_nowait(row)
                    except queue.Full:
                        log.error("audit.dropped", extra={"reason": "queue full"})
                        break
                return 0
            return len(rows)


def _row(event: AuditEvent, recorded: datetime) -> dict[str, Any]:
    """The row of `event`, every text cut to its column's length."""
    return {
        "recorded": recorded,
        "source": event.source[:16],
        "action": event.action[:32],
        "method": event.method[:8],
        "path": event.path[:500],
        "status": event.status,
        "outcome": event.outcome[:16],
        "client_id": _cut(event.client_id, 64),
        "user": _cut(event.user, 110),
        "patient": _cut(event.patient, 64),
        "peer": _cut(event.peer, 64),
        "detail": _cut(event.detail, 200),
        "counts": dict(event.counts) if event.counts is not None else None,
    }


def _cut(text: str | None, length: int) -> str | None:
    return text[:length] if text else None
