"""Settling: publish studies that have been quiet for the stable age (run by a `Periodic`).

Settling yields to HL7 traffic: while orders keep arriving (`Traffic`), a run is put off, up to
`MAX_DEFERRAL`, so that a burst of orders is answered without the settle worker taking turns on
the writer (SQLite) and the interpreter. Nothing is lost by waiting: what is not published yet
reads as the index implies it (`storage.usecases.derived`). Past the deferral, runs go ahead in
shorter transactions while the traffic lasts.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from storage.usecases.publish import Publisher

log = logging.getLogger(__name__)

PER_RUN = 200  # patients, and studies, a run publishes at most
PER_TRANSACTION = 50  # on SQLite the writer is held for this many, not for a whole run: HL7 ACKs wait
PER_BUSY_TRANSACTION = 10  # the same while HL7 messages keep arriving
QUIET = 1.0  # seconds without an HL7 message: the traffic has paused
MAX_DEFERRAL = 30.0  # seconds a run is put off at most while the traffic lasts


class Traffic:
    """When the last HL7 message arrived, and since when settling has been put off; noted by the
    MLLP handler (any thread), read by the settle worker."""

    def __init__(self) -> None:
        self._last = -math.inf
        self._deferred_since: float | None = None
        self._lock = threading.Lock()

    def note(self) -> None:
        """A message arrived (cheap: one clock read)."""
        self._last = time.monotonic()

    def busy(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return now - self._last < QUIET

    def defer(self, now: float | None = None) -> bool:
        """Whether to put this run off: the traffic lasts and the first put-off run is less than
        MAX_DEFERRAL ago. Traffic that lasts longer gets every run again, until it pauses."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self.busy(now):
                self._deferred_since = None
                return False
            if self._deferred_since is None:
                self._deferred_since = now
            return now - self._deferred_since < MAX_DEFERRAL


def settle(publisher: Publisher, traffic: Traffic | None = None) -> int:
    """Publish the settled version of every study quiet for the stable age, and the patients
    changed, up to PER_RUN of each, in transactions of PER_TRANSACTION; how many. With `traffic`:
    nothing while HL7 messages keep arriving (up to MAX_DEFERRAL), then transactions of
    PER_BUSY_TRANSACTION while they do."""
    if traffic is not None and traffic.defer():
        return 0
    done = 0
    per_transaction = PER_BUSY_TRANSACTION if traffic is not None and traffic.busy() else PER_TRANSACTION
    for _ in range(PER_RUN // per_transaction):
        published = publisher.pending(settled_only=True, limit=per_transaction)
        done += published
        if published < per_transaction:
            break
    if done:
        log.info("settle.published", extra={"published": done})
    return done
