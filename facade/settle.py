"""The settle worker: publishes studies that have been quiet for the stable age."""

from __future__ import annotations

import logging
import threading

from storage.usecases.publish import Publisher

log = logging.getLogger(__name__)


class SettleWorker:
    def __init__(self, publisher: Publisher, interval: float) -> None:
        self._publisher, self._interval = publisher, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="settle", daemon=True)

    def start(self) -> SettleWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                done = self._publisher.pending(settled_only=True)
                if done:
                    log.info("settle.published", extra={"published": done})
            except Exception:
                log.exception("settle.failed")
