"""The listeners of a serving process, each behind the same start / stop (`facade.lifecycle`):
HTTP (uvicorn, on a thread of its own), DICOM (`dicom_bridge.fast_server`: pynetdicom's threaded
server, storage associations on the fast path) and MLLP (HL7 v2,
`hl7_interface.mllp`)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from pynetdicom.transport import ThreadedAssociationServer

from facade.settings import Settings
from hl7_interface.mllp import MessageHandler, MllpConfig, MllpServer

log = logging.getLogger(__name__)


class HttpListener:
    """uvicorn serving one application. Its graceful shutdown waits for the requests under way
    (up to the config's `timeout_graceful_shutdown`); `hurry` drops them."""

    name = "http"

    def __init__(self, config: uvicorn.Config, *, url: str, listening: socket.socket | None = None) -> None:
        """`listening`: a socket bound and listening already (one `facade serve` handed down),
        served instead of binding the config's host and port."""
        self._server = _HttpServer(config)
        self._url = url
        self._listening = listening
        self._thread: threading.Thread | None = None
        self._exit_code: str | int | None = None
        self.port = config.port  # once started, the one listened on (chosen for port 0)

    def start(self, on_exit: threading.Event) -> None:
        self._thread = threading.Thread(target=self._run, args=(on_exit,), name="http", daemon=True)
        self._thread.start()
        self._server.listening.wait()  # set once listening, or when the server ended without
        if not self._server.started:
            self._thread.join()
            raise SystemExit(self._exit_code if self._exit_code is not None else 1)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        log.info(
            "http.listening", extra={"host": self._server.config.host, "port": self.port, "url": self._url}
        )

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()

    def hurry(self) -> None:
        self._server.force_exit = True

    def _run(self, on_exit: threading.Event) -> None:
        try:
            self._server.run(sockets=[self._listening] if self._listening is not None else None)
        except SystemExit as exc:  # uvicorn's answer to a port in use: the start fails
            self._exit_code = exc.code
        finally:
            self._server.listening.set()
            on_exit.set()


class _HttpServer(uvicorn.Server):
    """uvicorn, telling when it listens, minus its signal capture: the lifecycle owns the signals
    (uvicorn would re-raise SIGTERM after stopping HTTP, killing the process before the other
    listeners and the workers are stopped)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


class DicomListener:
    """The association server (`dicom_bridge.fast_server`), built by `serve` (the AE, its
    handlers, admission). Stopping it refuses new associations and aborts the fast path's under
    way (`FastServer.shutdown`)."""

    name = "dicom"

    def __init__(self, start: Callable[[], ThreadedAssociationServer]) -> None:
        self._start = start
        self._server: ThreadedAssociationServer | None = None

    def start(self, on_exit: threading.Event) -> None:
        self._server = self._start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def hurry(self) -> None:
        """Stopping does not wait for the peers: nothing to cut short."""


class MllpListener:
    """The HL7 v2 listener: MLLP framing, one thread per connection, each message handed to
    `handler`. Stopping refuses new connections, closes those waiting for a next message, lets
    the messages under way be answered (up to the config's `stop_timeout`) and closes the rest;
    `hurry` closes them all at once."""

    name = "mllp"

    def __init__(self, config: MllpConfig, handler: MessageHandler) -> None:
        self._server = MllpServer(config, handler)
        self.port = config.port  # once started, the one listened on (chosen for port 0)

    def start(self, on_exit: threading.Event) -> None:
        config = self._server.config
        try:
            self._server.start(on_exit=on_exit.set)
        except OSError as exc:  # a port in use, an address not ours: the start fails
            log.error(
                "mllp.cannot_listen",
                extra={"host": config.host, "port": config.port, "error": type(exc).__name__},
            )
            raise SystemExit(1) from exc
        self.port = self._server.port

    def stop(self) -> None:
        self._server.stop()

    def hurry(self) -> None:
        self._server.hurry()


def mllp_listener(settings: Settings, handler: MessageHandler) -> MllpListener:
    """The MLLP listener as FACADE_MLLP_* configure it, handing each message to `handler`."""
    return MllpListener(
        MllpConfig(
            host=settings.mllp_host,
            port=settings.mllp_port,
            max_connections=settings.mllp_max_connections,
            max_bytes=settings.mllp_max_bytes,
            idle_timeout=settings.mllp_idle_timeout,
            allowed=tuple(settings.mllp_allowed_networks()),
        ),
        handler,
    )
