"""MLLP, the Minimal Lower Layer Protocol that carries HL7 v2 over TCP (HL7 Version 2 Transport
Specification: MLLP, Release 1): each message travels as <SB 0x0B> message <EB 0x1C><CR 0x0D>,
and the receiver answers each with one framed reply (the ACK) before the sender sends the next.
Release 2's commit blocks (0x06 / 0x15 alone in a frame) are not spoken: such a frame is a message
like any other, for the handler to refuse.

This is the transport only. It deframes and frames, and hands each message, undecoded, to a
`MessageHandler`: the charset, parsing, the sending application's allow-list, the ACK and the
order are the handler's business. One thread per connection, so a handler that commits to a
database holds up its own sender only.

What closes a connection (each logged with the peer address, never with message content):
bytes outside a frame other than whitespace between frames (`mllp.unframed`); a message larger
than `max_bytes` (`mllp.too_large`: the handler never sees a part of it, and the rest is not
read, so the sender may see a reset); silence, or a frame left unfinished, for `idle_timeout`
seconds (`mllp.idle_timeout`); a handler that raises (`mllp.handler_failed`, its exception type
only) or returns None. Connections from outside `allowed` (when given), and those beyond
`max_connections` at once, are accepted and closed at once (`mllp.refused`).
"""

from __future__ import annotations

import ipaddress
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
END = EB + CR
BETWEEN_FRAMES = frozenset(b" \t\r\n")  # tolerated outside a frame: senders that add newlines
RECEIVE_CHUNK = 65536

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Peer:
    """The remote end of a connection, as accepted (an IP address, not a name)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class MessageHandler(Protocol):
    def __call__(self, message: bytes, peer: Peer) -> bytes | None:
        """Handle one message (the bytes between the start and the end block, undecoded); return
        the reply payload (an encoded ACK, unframed) to send back, b'' to send nothing and read
        on, or None to close the connection. An exception closes the connection too."""
        ...


def frame(payload: bytes) -> bytes:
    """One message as it travels: <SB> payload <EB><CR>."""
    return SB + payload + END


class FramingError(Exception):
    """The stream is not MLLP (or not within our limits); the connection is closed. The message is
    a PHI-free reason."""

    event = "mllp.framing"


class Unframed(FramingError):
    event = "mllp.unframed"


class TooLarge(FramingError):
    event = "mllp.too_large"


class Deframer:
    """The messages of one connection's byte stream, fed as it arrives, in pieces of any size: a
    frame split across many receives, several frames in one."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._buffer = bytearray()  # from the first byte after the start block, when in a frame
        self._in_frame = False
        self._scanned = 0  # the end block lies at or after this offset

    @property
    def idle(self) -> bool:
        """Between messages: nothing of a next one received yet."""
        return not self._in_frame and not self._buffer

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> bytes | None:
        """The next whole message, or None until more bytes arrive. Raises `Unframed` for bytes
        before a start block, `TooLarge` for a message beyond the limit."""
        buffer = self._buffer
        if not self._in_frame:
            skip = 0
            while skip < len(buffer) and buffer[skip] in BETWEEN_FRAMES:
                skip += 1
            if skip == len(buffer):
                buffer.clear()
                return None
            if buffer[skip] != SB[0]:
                raise Unframed("bytes outside a frame")
            del buffer[: skip + 1]
            self._in_frame, self._scanned = True, 0
        end = buffer.find(END, self._scanned)
        if end < 0:
            # the message is at least this long: all of it but the first half of an end block
            if len(buffer) - buffer.endswith(EB) > self._max_bytes:
                raise TooLarge(f"message larger than {self._max_bytes} bytes")
            self._scanned = max(0, len(buffer) - 1)
            return None
        if end > self._max_bytes:
            raise TooLarge(f"message larger than {self._max_bytes} bytes")
        message = bytes(buffer[:end])
        del buffer[: end + len(END)]
        self._in_frame = False
        return message


@dataclass(frozen=True)
class MllpConfig:
    host: str = "127.0.0.1"
    port: int = 2575  # 0: any free port (`MllpServer.port` says which, once started)
    max_connections: int = 32  # at once; more are accepted and closed at once
    max_bytes: int = 16 * 1024**2  # one message, without its framing
    idle_timeout: float = 300.0  # seconds without a byte from the peer (or a reply taken by it)
    allowed: Sequence[Network] = ()  # peer addresses that may connect; empty: anyone
    stop_timeout: float = 10.0  # seconds a stop waits for the messages under way


def peer_allowed(host: str, allowed: Sequence[Network]) -> bool:
    """Whether a peer address lies in the allow-list (empty: anyone). An IPv4 peer of a dual-stack
    listener (::ffff:a.b.c.d) is matched as its IPv4 address."""
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)


class MllpServer:
    """Accepts connections on a thread of its own and serves each on a thread of its own.

    Stopping closes the listening socket, closes the connections waiting between messages, lets
    each message under way (being received, or in the handler) be answered, up to
    `stop_timeout`, then closes what is left."""

    def __init__(self, config: MllpConfig, handler: MessageHandler) -> None:
        self.config = config
        self.port = config.port  # once started, the one listened on
        self.handler = handler
        self._lock = threading.RLock()  # RLock: `hurry` may run in a signal handler, over `stop`
        self._connections: set[_Connection] = set()
        self._stopping = threading.Event()
        self._hurried = threading.Event()
        self._listening: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None  # stop -> the accept loop
        self._acceptor: threading.Thread | None = None
        self._on_exit: Callable[[], None] = lambda: None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self, on_exit: Callable[[], None] | None = None) -> None:
        """Listen, and return once listening; `on_exit` is called if accepting ends other than by
        `stop`. Raises OSError when the address cannot be listened on."""
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        self._listening = socket.create_server((self.config.host, self.config.port), family=family)
        self._listening.setblocking(False)
        self._wake = socket.socketpair()
        self.port = int(self._listening.getsockname()[1])
        self._on_exit = on_exit or self._on_exit
        self._acceptor = threading.Thread(target=self._accept_loop, name="mllp-accept", daemon=True)
        self._acceptor.start()
        log.info("mllp.listening", extra={"host": self.config.host, "port": self.port})

    def stop(self) -> None:
        """Stop accepting, let the messages under way be answered (within `stop_timeout`), close
        every connection; return when done."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._wake is None or self._acceptor is None:
            return  # never started
        self._wake[1].send(b"\0")
        self._acceptor.join()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.stop()
        left = self._join(connections, self.config.stop_timeout, until_hurried=True)
        if left:
            log.warning("mllp.stop_cut_short", extra={"count": len(left)})
            self.hurry()
            self._join(left, 1.0)  # a handler still running holds its thread (a daemon) on
        for end in self._wake:
            end.close()
        log.info("mllp.stopped", extra={"port": self.port})

    def hurry(self) -> None:
        """Close every connection now, and cut short the wait of a stop: a handler under way
        finishes, its reply is not sent."""
        self._hurried.set()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.cut()

    def _join(
        self, connections: list[_Connection], seconds: float, *, until_hurried: bool = False
    ) -> list[_Connection]:
        """Wait up to `seconds` for the connections' threads to end (or until `hurry`); those left."""
        deadline = time.monotonic() + seconds
        for connection in connections:
            while connection.thread.is_alive() and not (until_hurried and self._hurried.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                connection.thread.join(min(remaining, 0.1))  # a slice: `hurry` may come meanwhile
        return [c for c in connections if c.thread.is_alive()]

    def _accept_loop(self) -> None:
        assert self._listening is not None and self._wake is not None
        try:
            with self._listening, selectors.DefaultSelector() as selector:
                selector.register(self._listening, selectors.EVENT_READ)
                selector.register(self._wake[0], selectors.EVENT_READ)
                while not self._stopping.is_set():
                    for key, _ in selector.select():
                        if key.fileobj is self._listening:
                            self._accept_one()
        except Exception:
            log.exception("mllp.accept_failed")
        finally:
            if not self._stopping.is_set():
                self._on_exit()

    def _accept_one(self) -> None:
        assert self._listening is not None
        try:
            sock, address = self._listening.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # gone before we took it
        except OSError as exc:  # out of file descriptors: do not spin, try again shortly
            log.warning("mllp.accept_failed", extra={"error": type(exc).__name__})
            self._stopping.wait(0.1)
            return
        peer = Peer(str(address[0]), int(address[1]))
        if not peer_allowed(peer.host, self.config.allowed):
            _refuse(sock, peer, "address not allowed")
            return
        with self._lock:
            if len(self._connections) >= self.config.max_connections:
                connection = None
            else:
                connection = _Connection(self, sock, peer)
                self._connections.add(connection)
        if connection is None:
            _refuse(sock, peer, "too many connections")
            return
        connection.thread.start()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)


def _refuse(sock: socket.socket, peer: Peer, reason: str) -> None:
    log.warning("mllp.refused", extra={"peer": str(peer), "reason": reason})
    sock.close()


class _Connection:
    """One peer's connection: messages in order, one reply each, on a thread of its own."""

    def __init__(self, server: MllpServer, sock: socket.socket, peer: Peer) -> None:
        self._server, self._sock, self.peer = server, sock, peer
        self._deframer = Deframer(server.config.max_bytes)
        self._lock = threading.RLock()
        self._phase = "waiting"  # for a next message; then receiving, handling, replying; closed
        self.answered = 0
        self.thread = threading.Thread(target=self._run, name=f"mllp-{peer}", daemon=True)

    def stop(self) -> None:
        """Close now if waiting for a next message; a message under way is answered first
        (`_serve` checks the server's `stopping` after each reply)."""
        with self._lock:
            if self._phase == "waiting":
                self._shutdown()

    def cut(self) -> None:
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._phase != "closed":
            with suppress(OSError):  # the peer is gone already
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv()

    def _enter(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    def _run(self) -> None:
        facts: dict[str, object] = {"peer": str(self.peer)}
        log.info("mllp.connected", extra=facts)
        try:
            self._sock.settimeout(self._server.config.idle_timeout)
            reason = self._serve(facts)
        except FramingError as exc:
            log.warning(exc.event, extra=facts | {"reason": str(exc)})
            reason = str(exc)
        except TimeoutError:  # between messages, a sender keeping its connection open: no fault
            reason = f"idle timeout while {self._phase}"
            level = logging.INFO if self._phase == "waiting" else logging.WARNING
            log.log(level, "mllp.idle_timeout", extra=facts | {"reason": reason})
        except OSError as exc:  # reset by the peer, or closed by a stop
            reason = "stopping" if self._server.stopping else type(exc).__name__
        except Exception as exc:  # a bug (a reply that is not bytes): this connection only
            log.exception("mllp.failed", extra=facts | {"error": type(exc).__name__})
            reason = "failed"
        finally:
            with self._lock:
                self._phase = "closed"
                self._sock.close()
            self._server._forget(self)
        log.info("mllp.closed", extra=facts | {"reason": reason, "count": self.answered})

    def _serve(self, facts: dict[str, object]) -> str:
        """Answer messages until the peer leaves, the handler closes or the server stops; the
        reason to close."""
        while True:
            message = self._deframer.next()
            if message is None:
                if not self._receive():
                    if self._server.stopping:
                        return "stopping"
                    return "peer closed" if self._deframer.idle else "peer closed within a message"
                continue
            self._enter("handling")
            try:
                reply = self._server.handler(message, self.peer)
            except Exception as exc:  # a bug: the traceback to the log (types and frames only)
                log.exception("mllp.handler_failed", extra=facts | {"error": type(exc).__name__})
                return "handler failed"
            if reply is None:
                return "handler closed"
            if reply:  # b'': nothing to answer (HL7 enhanced mode, an accept ACK not asked for)
                self._enter("replying")
                self._sock.sendall(frame(reply))
                self.answered += 1
            if self._server.stopping:
                return "stopping"

    def _receive(self) -> bool:
        """Read what the peer sent into the deframer; False at its end, or at a stop while
        waiting for a next message."""
        with self._lock:
            idle = self._deframer.idle
            if idle and self._server.stopping:
                return False
            self._phase = "waiting" if idle else "receiving"
        data = self._sock.recv(RECEIVE_CHUNK)
        if not data:
            return False
        self._enter("receiving")
        self._deframer.feed(data)
        return True
