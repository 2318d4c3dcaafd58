"""One lifecycle for a serving process: its listeners (HTTP, DICOM; MLLP next) and its periodic
workers (settle, housekeeping, audit flush; the outbox next) are started and stopped here.

Start: the listeners in order (a port already taken fails the start before any work begins),
then the workers. Stop (asked by a signal, or when a listener ends by itself): the listeners in
reverse order, each finishing what it had under way, then the workers, each with its run in
progress and its last run (the audit flush then writes what the listeners recorded up to the
end). Nothing here is process-global: a process may run several lifecycles, and a later
deployment several processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from facade.workers import Periodic

log = logging.getLogger(__name__)


class Listener(Protocol):
    name: str

    def start(self, on_exit: threading.Event) -> None:
        """Listen (in the background) and return once listening; set `on_exit` if the listener
        ends by itself. Raises SystemExit when it cannot listen."""
        ...

    def stop(self) -> None:
        """Stop listening and finish (or abort) what is under way; return when done."""
        ...

    def hurry(self) -> None:
        """Cut a graceful stop short (a second interrupt)."""
        ...


class Lifecycle:
    def __init__(self, listeners: Sequence[Listener], workers: Sequence[Periodic]) -> None:
        self.listeners, self.workers = list(listeners), list(workers)
        self._stop = threading.Event()
        self.running = threading.Event()  # set once every listener listens and every worker runs

    def run(self) -> None:
        """Start everything, wait for `request_stop` (or a listener's own end), stop everything."""
        started: list[Listener] = []
        try:
            for listener in self.listeners:
                listener.start(self._stop)
                started.append(listener)
            for worker in self.workers:
                worker.start()
            self.running.set()
            self._stop.wait()
        finally:
            self.running.clear()
            for listener in reversed(started):
                try:
                    listener.stop()
                except Exception:
                    log.exception("listener.stop_failed", extra={"source": listener.name})
            for worker in self.workers:  # also the unstarted ones: their last run (audit flush)
                worker.stop()

    def request_stop(self, *, hurry: bool = False) -> None:
        """Ask `run` to stop (safe from a signal handler); with `hurry`, a stop already under
        way stops forcibly."""
        if hurry and self._stop.is_set():
            for listener in self.listeners:
                listener.hurry()
        self._stop.set()
