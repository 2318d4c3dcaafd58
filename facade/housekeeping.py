"""Housekeeping: every few minutes, remove authorization state that expired (codes, tokens,
browser sessions, pending requests, launches, seen assertion ids) so the tables stay small."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


class Housekeeper:
    def __init__(self, chores: Sequence[Callable[[], int]], interval: float = 600.0) -> None:
        self._chores, self._interval = list(chores), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> Housekeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run_once(self) -> int:
        removed = 0
        for chore in self._chores:
            try:
                removed += chore()
            except Exception:
                log.exception("housekeeping.failed")
        if removed:
            log.info("housekeeping.purged", extra={"count": removed})
        return removed

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()
