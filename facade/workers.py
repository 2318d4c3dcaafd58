"""Background work of `facade serve`: one periodic-worker implementation (settle, housekeeping,
audit flush; the outbox next), started and stopped in one place by `facade.lifecycle`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs `task` every `interval` seconds on its own thread until stopped. A failing run is
    logged and the next one goes ahead: a database that is briefly down stops no worker.

    With `run_at_stop`, `stop` runs the task once more after the thread has ended: the audit
    flush writes what the listeners recorded while they were being stopped."""

    def __init__(
        self, name: str, interval: float, task: Callable[[], object], *, run_at_stop: bool = False
    ) -> None:
        self.name, self._interval, self._task = name, interval, task
        self._run_at_stop = run_at_stop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask to stop and wait for the run in progress (if any) to finish; then the last run."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        if self._run_at_stop:
            self._run_once()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._run_once()

    def _run_once(self) -> None:
        try:
            self._task()
        except Exception:
            log.exception("worker.failed", extra={"source": self.name})
