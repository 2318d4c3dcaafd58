"""Background work of `facade serve`: one periodic-worker implementation (settle, housekeeping,
audit flush, ORU outbox delivery), started and stopped in one place by `facade.lifecycle`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs `task` every `interval` seconds on its own thread until stopped. A failing run is
    logged and the next one goes ahead: a database that is briefly down stops no worker.

    With `run_at_stop`, `stop` runs the task once more after the thread has ended: the audit
    flush writes what the listeners recorded while they were being stopped.

    `wake` runs the task at once instead of at the end of the interval (a run under way is followed
    by another): the outbox delivers a message as soon as its transaction commits. `on_stop` is
    called once the thread has ended (the outbox worker closes its connections)."""

    def __init__(
        self,
        name: str,
        interval: float,
        task: Callable[[], object],
        *,
        run_at_stop: bool = False,
        on_stop: Callable[[], object] | None = None,
    ) -> None:
        self.name, self._interval, self._task = name, interval, task
        self._run_at_stop, self._on_stop = run_at_stop, on_stop
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask to stop and wait for the run in progress (if any) to finish; then the last run."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        if self._run_at_stop:
            self._run_once()
        if self._on_stop is not None:
            self._on_stop()

    def wake(self) -> None:
        """Run the task now (or right after the run under way); safe from any thread."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._run_once()

    def _run_once(self) -> None:
        try:
            self._task()
        except Exception:
            log.exception("worker.failed", extra={"source": self.name})
