"""Sending over MLLP (HL7 Version 2 Transport Specification: MLLP, Release 1): one framed message
out, one framed ACK back, read until <EB><CR> however the bytes arrive, within a timeout.

One connection per destination is kept open between messages, one message outstanding on it at a
time (reference §5). A connection the receiver closed while idle is noticed at the next send,
which is tried once more on a new connection; the receiver may then see a message twice, which
at-least-once delivery allows (it de-duplicates by MSH-10).

Every failure is an OSError (`ConnectionError`, `TimeoutError`, or `MllpError` for a reply that is
not MLLP, not an ACK, or the ACK of another message): the caller retries those later. An ACK
that refuses (AE / AR) is no failure of the transport: it is returned.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import suppress

from hl7_interface.mllp import Deframer, FramingError, frame
from mapping.hl7.ack import Acknowledgement, read_ack
from mapping.hl7.charsets import Charset, charset_named
from mapping.hl7.errors import Hl7Error

log = logging.getLogger(__name__)

MAX_ACK_BYTES = 1024**2


class MllpError(OSError):
    """The reply is not the ACK of the message sent (PHI-free reason)."""


class MllpClient:
    """Sends messages and returns their ACKs; thread-safe (one lock per destination)."""

    def __init__(self, *, connect_timeout: float = 5.0, ack_timeout: float = 30.0) -> None:
        self._connect_timeout, self._ack_timeout = connect_timeout, ack_timeout
        self._connections: dict[tuple[str, int], socket.socket] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._guard = threading.Lock()
        utf8 = charset_named("UNICODE UTF-8")
        assert utf8 is not None
        self._charset: Charset = utf8

    def send(self, host: str, port: int, payload: bytes, control_id: str) -> Acknowledgement:
        """Send one message (unframed ER7) and return its ACK. Raises OSError when it could not
        be sent or its ACK not read, or the ACK's MSA-2 is not `control_id`."""
        key = (host, port)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            sock = self._connections.pop(key, None)
            if sock is not None:
                try:
                    return self._exchange(key, sock, payload, control_id)
                except ConnectionError:
                    pass  # closed by the receiver while idle: once more, on a new connection
            sock = socket.create_connection(key, timeout=self._connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self._exchange(key, sock, payload, control_id)

    def _exchange(
        self, key: tuple[str, int], sock: socket.socket, payload: bytes, control_id: str
    ) -> Acknowledgement:
        try:
            sock.settimeout(self._ack_timeout)
            sock.sendall(frame(payload))
            reply = _read_frame(sock, time.monotonic() + self._ack_timeout)
            try:
                ack = read_ack(reply, self._charset)
            except Hl7Error as exc:
                raise MllpError("the reply is not an HL7 ACK") from exc
            if ack.control_id != control_id:
                raise MllpError("the ACK acknowledges another message (MSA-2 is not our MSH-10)")
        except BaseException:
            with suppress(OSError):
                sock.close()
            raise
        self._connections[key] = sock  # kept for the next message
        return ack

    def close(self) -> None:
        with self._guard:
            connections, self._connections = list(self._connections.values()), {}
        for sock in connections:
            with suppress(OSError):
                sock.close()


class _ClosedEarly(MllpError, ConnectionError):
    """The receiver closed the connection before a whole ACK came."""


def _read_frame(sock: socket.socket, deadline: float) -> bytes:
    deframer = Deframer(MAX_ACK_BYTES)
    while True:
        try:
            message = deframer.next()
        except FramingError as exc:
            raise MllpError(f"the reply is not MLLP: {exc}") from exc
        if message is not None:
            return message
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no ACK within the timeout")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            raise _ClosedEarly("the receiver closed the connection before its ACK")
        deframer.feed(data)
