"""Background work of `facade serve`: one periodic-worker implementation (settle, housekeeping;
the outbox next), started and stopped in one place by `serve`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs `task` every `interval` seconds on its own thread until stopped. A failing run is
    logged and the next one goes ahead: a database that is briefly down stops no worker."""

    def __init__(self, name: str, interval: float, task: Callable[[], object]) -> None:
        self.name, self._interval, self._task = name, interval, task
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask to stop and wait for the run in progress (if any) to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._task()
            except Exception:
                log.exception("worker.failed", extra={"source": self.name})
