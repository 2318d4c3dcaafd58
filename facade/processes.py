"""`facade serve --workers N`: one parent process, N serving processes sharing its listening sockets.

The parent binds the DICOM and HTTP sockets and hands them to N children (`python -m facade.cli
serve` with FACADE_INHERITED_SOCKETS naming the inherited descriptors): each child accepts
associations and requests on the same two sockets, the kernel giving each new connection to one
child that waits in accept() (measured to spread two associations over two processes every time,
where SO_REUSEPORT put both in one process in 5 of 9 runs). Children are fresh interpreters, not
forks: the parent has threads by then, and a fork copies their locks in whatever state they are.

What must run once per deployment runs in the parent: the MLLP listener (HL7 in), settle,
housekeeping, the ORU outbox, and indexing what an earlier run or a dead child held
(`Ingest.recover`). Each child flushes its own audit events (buffered in its memory). A child that
ends by itself is started again, once the parent has indexed what it held.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_WATCH_EVERY = 0.2  # seconds between looks at the children
_STOP_TIMEOUT = 30.0  # seconds a child has to stop after SIGTERM, then SIGKILL


def listening_socket(host: str, port: int, *, no_delay: bool = False) -> socket.socket:
    """A bound, listening TCP socket that children inherit (their accepted sockets inherit
    TCP_NODELAY on Linux)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if no_delay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ChildProcesses:
    """N serving children, each started with `env` and the `sockets` to inherit; a listener of the
    parent's lifecycle. One that ends by itself is started again after `on_child_gone`."""

    name = "workers"

    def __init__(
        self,
        count: int,
        env: dict[str, str],
        sockets: dict[str, socket.socket],
        on_child_gone: Callable[[], object],
    ) -> None:
        self._count, self._sockets, self._on_gone = count, sockets, on_child_gone
        self._env = env | {
            "FACADE_INHERITED_SOCKETS": ",".join(f"{name}={s.fileno()}" for name, s in sockets.items()),
            "FACADE_WORKERS": "1",
        }
        self._children: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [child.pid for child in self._children]

    def start(self, on_exit: threading.Event) -> None:
        with self._lock:
            self._children = [self._spawn() for _ in range(self._count)]
        self._watcher = threading.Thread(target=self._watch, name="workers", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            children = list(self._children)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("worker.kill", extra={"pid": child.pid})
                child.kill()
                child.wait()
        for sock in self._sockets.values():
            sock.close()

    def hurry(self) -> None:
        """A second interrupt: the children hurry too."""
        with self._lock:
            for child in self._children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
                    child.send_signal(signal.SIGINT)

    def _spawn(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-m", "facade.cli", "serve"],
            env=self._env,
            pass_fds=[s.fileno() for s in self._sockets.values()],
        )
        log.info("worker.started", extra={"pid": child.pid})
        return child

    def _watch(self) -> None:
        while not self._stopping.wait(_WATCH_EVERY):
            with self._lock:
                gone = [(n, c) for n, c in enumerate(self._children) if c.poll() is not None]
            for n, child in gone:
                if self._stopping.is_set():
                    return
                log.error("worker.exited", extra={"pid": child.pid, "returncode": child.returncode})
                try:
                    self._on_gone()  # what it held, indexed before its successor accepts
                except Exception:
                    log.exception("worker.recover_failed")
                with self._lock:
                    self._children[n] = self._spawn()


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket behind an inherited descriptor."""
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    return sock
