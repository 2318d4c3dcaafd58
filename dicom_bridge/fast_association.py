"""The facade's own association path: one established association, run in its connection's
thread with blocking reads (no polling, no hand-off between threads): C-STORE, C-ECHO and C-FIND
with C-CANCEL (PS3.7 9.1.1, 9.1.2, 9.1.5), release and abort (PS3.8 7.2, 7.3), P-DATA-TF
reassembly (PS3.8 9.3.5).

Each C-STORE data set goes from the socket straight into `Ingest.staging()` behind the Part 10
header pynetdicom wrote before (memory: one PDU at a time), and is answered after
`Ingest.accept` with the status the shared `storage_scp.store_instance` decides. A C-FIND is
answered by the same `FindScp.respond` as pynetdicom's, each response sent as it is made; before
each, what the peer sent meanwhile is read without waiting, to see its C-CANCEL. The association
was negotiated by `dicom_bridge.fast_server`, which hands everything else to pynetdicom.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from dicom_bridge import dimse_command as dimse
from dicom_bridge.association_audit import outcome_of_store, store_counts
from dicom_bridge.fast_find import answer_find
from dicom_bridge.fast_get import answer_get
from dicom_bridge.find_responses import FindResponder
from dicom_bridge.get_scp import GetScp
from dicom_bridge.statuses import CANNOT_UNDERSTAND
from dicom_bridge.storage_scp import (
    PeerGone,
    Request,
    StorageScp,
    log_association,
    release_requested,
    store_instance,
)
from mapping.dicom.part10 import file_meta_header

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">BxI")  # PDU type, reserved, length (PS3.8 9.3.1)
_ITEM = struct.Struct(">IBB")  # PDV item length, presentation context id, message control header
_P_DATA, _RELEASE_RQ, _RELEASE_RP, _ABORT = 0x04, 0x05, 0x06, 0x07
_RELEASE_RP_PDU = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"
# A-ABORT sources and reasons (PS3.8 9.3.8)
USER, PROVIDER = 0x00, 0x02
UNRECOGNIZED_PDU, UNEXPECTED_PDU, INVALID_PARAMETER = 0x01, 0x02, 0x06
_MAX_COMMAND = 1 << 16  # a command set is a few hundred bytes
_MAX_IDENTIFIER = 1 << 20  # a C-FIND identifier is a few keys; a bigger one ends the association


class Aborted(PeerGone):
    """The association ends in an A-ABORT: received (`sent` False) or to be sent by us."""

    def __init__(self, source: int = USER, reason: int = 0, *, sent: bool = True) -> None:
        super().__init__(f"A-ABORT source {source} reason {reason}")
        self.source, self.reason, self.send = source, reason, sent


class _Released(Exception):
    """The peer asked to release, and was answered."""


@dataclass(frozen=True)
class Accepted:
    """What negotiation settled (`dicom_bridge.fast_server`)."""

    calling_ae: str
    peer: str
    contexts: dict[int, tuple[str, str]]  # accepted context id -> (abstract syntax, transfer syntax)
    our_max_pdu: int  # the longest P-DATA-TF we accept (0: no limit; then `_UNLIMITED`)
    peer_max_pdu: int  # the longest the peer accepts (0: no limit)
    implementation_uid: str
    implementation_version: str
    sending: frozenset[int] = frozenset()  # contexts on which we may send C-STOREs (role selection)


@dataclass(eq=False)  # hashable by identity: the server keeps those under way in a set
class FastAssociation:
    """One association, from just after the A-ASSOCIATE-AC to its end."""

    sock: socket.socket
    accepted: Accepted
    store: StorageScp | None
    network_timeout: float | None
    find: FindResponder | None = None
    get: GetScp | None = None
    counts: dict[str, int] = field(default_factory=store_counts)
    _send_lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: list[tuple[int, int, memoryview]] = field(default_factory=list)
    sends: int = 0  # sends so far: a `CancelWatch` looks at the socket once after each
    _deferred: bytes = b""  # to go out with the next send (`defer`)
    _stores: bool = False  # a C-STORE request came: its instance is indexed before a release is confirmed

    def run(self) -> str:
        """Serve requests until the association ends; how it ended: released or aborted."""
        self.sock.settimeout(self.network_timeout)
        self._buffer = bytearray(min(self._limit(), 1 << 20) + 6)
        try:
            self._serve()
        except _Released:
            outcome = "released"
        except Aborted as exc:
            if exc.send:
                self.abort(exc.source, exc.reason)
            outcome = "aborted"
        except (PeerGone, OSError):
            outcome = "aborted"
        except Exception:  # a bug of ours: the peer gets an A-ABORT, the log the traceback
            log.exception("association.failed", extra={"peer": self.accepted.peer})
            self.abort(USER, 0)
            outcome = "aborted"
        log_association(outcome, self.accepted.calling_ae, self.accepted.peer)
        return outcome

    def abort(self, source: int = USER, reason: int = 0) -> None:
        """Send an A-ABORT (also from another thread: a stopping listener) and end the connection."""
        pdu = struct.pack(">BxIxxBB", _ABORT, 4, source, reason)
        if self._send_lock.acquire(timeout=1.0):  # not behind a send to a peer that reads nothing
            try:
                with suppress(OSError):
                    self.sock.sendall(pdu)
            finally:
                self._send_lock.release()
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _serve(self) -> None:
        command = bytearray()
        while True:
            context_id, control, data = self._next_pdv(idle=not command)
            if context_id not in self.accepted.contexts:
                raise Aborted(USER, 0)  # as pynetdicom: a message on a context not accepted
            if not control & 0x01:
                raise Aborted(PROVIDER, UNEXPECTED_PDU)  # a data set fragment without its command
            command += data
            if len(command) > _MAX_COMMAND:
                raise Aborted(PROVIDER, INVALID_PARAMETER)
            if control & 0x02:
                try:
                    request = dimse.read_command(command)
                except dimse.Malformed:
                    raise Aborted(PROVIDER, INVALID_PARAMETER) from None
                command.clear()
                self._dispatch(context_id, request)

    def _dispatch(self, context_id: int, request: dimse.Command) -> None:
        if request.field == dimse.C_STORE_RQ and self.store is not None:
            self._c_store(context_id, request)
        elif request.field == dimse.C_FIND_RQ and self._finds(context_id):
            assert self.find is not None
            answer_find(self, self.find, context_id, request)
        elif (
            request.field == dimse.C_GET_RQ
            and self.get
            and self.get.answers(self.accepted.contexts[context_id][0])
        ):
            answer_get(self, self.get, context_id, request)
        elif request.field == dimse.C_ECHO_RQ:
            self._drain(context_id, request)
            self.send(
                context_id,
                dimse.response(
                    dimse.C_ECHO_RSP, request.message_id, 0, sop_class_uid=request.affected_sop_class_uid
                ),
            )
        elif request.field in dimse.REQUESTS:  # a service this association was not negotiated for
            self._drain(context_id, request)
            rsp = dimse.response(
                request.field | 0x8000,
                request.message_id,
                dimse.UNRECOGNIZED_OPERATION,
                sop_class_uid=request.affected_sop_class_uid,
            )
            self.send(context_id, rsp)
        else:  # C-CANCEL (nothing of ours is cancellable), a response: ignored
            self._drain(context_id, request)

    def _c_store(self, context_id: int, request: dimse.Command) -> None:
        assert self.store is not None
        self._stores = True
        transfer_syntax = self.accepted.contexts[context_id][1]
        uid = request.affected_sop_instance_uid
        too_long = len(uid) > 64
        header = file_meta_header(
            sop_class_uid=request.affected_sop_class_uid,
            sop_instance_uid=uid,
            transfer_syntax_uid=transfer_syntax,
            implementation_uid=self.accepted.implementation_uid,
            version=self.accepted.implementation_version,
        )
        drained = False

        def receive(staging_write: Callable[[bytes | memoryview], None]) -> None:
            nonlocal drained
            drained = True
            self._data_set(context_id, staging_write, header)

        def skip() -> None:
            nonlocal drained
            drained = True
            self._data_set(context_id, None, b"")

        comment: str | None
        if not request.has_data_set:
            status, comment = CANNOT_UNDERSTAND, "the C-STORE request has no data set"
        else:
            status, comment = store_instance(
                self.store.ingest,
                Request(
                    calling_ae=self.accepted.calling_ae,
                    peer=self.accepted.peer,
                    sop_class_uid=request.affected_sop_class_uid,
                    sop_instance_uid="" if too_long else uid,
                    uid_too_long=too_long,
                ),
                receive=lambda staging: receive(staging.write),
                skip=skip,
            )
            if not drained:  # refused before the data set was read: read past it
                self._data_set(context_id, None, b"")
        self.counts[outcome_of_store(status)] += 1
        rsp = dimse.response(
            dimse.C_STORE_RSP,
            request.message_id,
            status,
            sop_class_uid=request.affected_sop_class_uid,
            sop_instance_uid="" if too_long else uid,  # optional (U); when present, the request's
            error_comment=comment,
        )
        self.send(context_id, rsp)

    def _finds(self, context_id: int) -> bool:
        return self.find is not None and self.find.answers(self.accepted.contexts[context_id][0])

    def read_data_set(self, context_id: int, request: dimse.Command) -> bytes | None:
        """The request's data set (an identifier: at most 1 MiB, else the association ends), or
        None when it has none."""
        if not request.has_data_set:
            return None
        data = bytearray()

        def keep(part: bytes | memoryview) -> None:
            if len(data) + len(part) > _MAX_IDENTIFIER:
                raise Aborted(PROVIDER, INVALID_PARAMETER)
            data.extend(part)

        self._data_set(context_id, keep, b"")
        return bytes(data)

    def next_command(self) -> dimse.Command:
        """The next command the peer sends while we answer one of its requests (a C-CANCEL, a
        sub-operation's response): a data set fragment breaks the protocol."""
        command = bytearray()
        while True:
            context_id, control, data = self._next_pdv(idle=False)
            if context_id not in self.accepted.contexts or not control & 0x01:
                raise Aborted(PROVIDER, UNEXPECTED_PDU)
            command += data
            if len(command) > _MAX_COMMAND:
                raise Aborted(PROVIDER, INVALID_PARAMETER)
            if control & 0x02:
                try:
                    return dimse.read_command(command)
                except dimse.Malformed:
                    raise Aborted(PROVIDER, INVALID_PARAMETER) from None

    def send_stream(self, context_id: int, command: bytes, data_set: BinaryIO) -> None:
        """The command set, then a data set read from `data_set` to its end, in P-DATA-TF PDUs
        within the peer's maximum length, written in batches (memory: a batch at a time)."""
        room = max(self.accepted.peer_max_pdu - 6, 1) if self.accepted.peer_max_pdu else _STREAM_PDV
        with self._send_lock:
            out = bytearray(self._deferred)  # with the command, and the data set's start
            out += _pdus(context_id, 0x01, command, room)
            self._deferred = b""
            self.sends += 1
            part = data_set.read(room)
            while True:
                following = data_set.read(room)
                control = 0x00 if following else 0x02
                out += _HEADER.pack(_P_DATA, len(part) + 6) + _ITEM.pack(len(part) + 2, context_id, control)
                out += part
                if not following or len(out) >= _STREAM_BATCH:
                    self.sock.sendall(out)
                    out.clear()
                if not following:
                    return
                part = following

    def input_waiting(self) -> bool:
        """Has the peer sent something not read yet (or closed)? Never waits."""
        return bool(self._pending) or _readable(self.sock)

    def cancel_watch(self, message_id: int) -> CancelWatch:
        return CancelWatch(self, message_id)

    def count(self, what: str, n: int = 1) -> None:
        """Add to the association's audit counts (`association_audit`)."""
        if n:
            self.counts[what] = self.counts.get(what, 0) + n

    def _drain(self, context_id: int, request: dimse.Command) -> None:
        if request.has_data_set:
            self._data_set(context_id, None, b"")

    def _data_set(
        self, context_id: int, sink: Callable[[bytes | memoryview], None] | None, header: bytes
    ) -> None:
        """Read a data set's fragments up to the last into `sink` (None: dropped). A sink that
        fails (no room) is dropped and its error raised once the data set has been read, so the
        answer can follow it."""
        error: Exception | None = None

        def put(data: bytes | memoryview) -> None:
            nonlocal sink, error
            if sink is not None:
                try:
                    sink(data)
                except Exception as exc:
                    sink, error = None, exc

        if header:
            put(header)
        while True:
            cid, control, data = self._next_pdv(idle=False)
            if cid != context_id or control & 0x01:
                raise Aborted(PROVIDER, UNEXPECTED_PDU)  # another message began inside this one
            put(data)
            if control & 0x02:
                break
        if error is not None:
            raise error

    def send(self, context_id: int, command: bytes, data_set: bytes = b"") -> None:
        """The command set, then the data set if any, in P-DATA-TF PDUs of one fragment each
        within the peer's maximum length: one `sendall`."""
        self.send_bytes(self.message(context_id, command, data_set))

    def message(self, context_id: int, command: bytes, data_set: bytes = b"") -> bytes | bytearray:
        """The P-DATA-TF PDUs `send` sends: the command set and the data set as two PDV items of
        one PDU when it fits within the peer's maximum length (PS3.8 9.3.5), else each in PDUs of
        one fragment each."""
        peer_max = self.accepted.peer_max_pdu
        both = len(command) + len(data_set) + 12
        if data_set and (not peer_max or both <= peer_max):
            return (
                _HEADER.pack(_P_DATA, both)
                + _ITEM.pack(len(command) + 2, context_id, 0x03)
                + command
                + _ITEM.pack(len(data_set) + 2, context_id, 0x02)
                + data_set
            )
        room = peer_max - 6 if peer_max else 0
        out = _pdus(context_id, 0x01, command, room or len(command))
        if data_set:
            out += _pdus(context_id, 0x00, data_set, room or len(data_set))
        return out

    def send_bytes(self, data: bytes | bytearray) -> None:
        """PDUs `message` made (several messages' together: one `sendall`), behind those deferred."""
        with self._send_lock:
            if self._deferred:
                data, self._deferred = self._deferred + data, b""
            self.sock.sendall(data)
        self.sends += 1

    def defer(self, data: bytes | bytearray) -> None:
        """PDUs `message` made, to go out with the next send (a C-GET's pending response with
        the next sub-operation's C-STORE: one system call and one segment for both)."""
        self._deferred += data

    def _next_pdv(self, *, idle: bool) -> tuple[int, int, memoryview]:
        """The next PDV item (context id, message control header, value), reading PDUs as
        needed; A-RELEASE-RQ between messages is answered and ends the association."""
        while not self._pending:
            kind, body = self._read_pdu()
            if kind == _P_DATA:
                self._pending = _items(body)
                self._pending.reverse()
            elif kind == _RELEASE_RQ and idle:
                if self.store is not None and self._stores:  # what the peer sent is indexed before we confirm
                    release_requested(self.store.ingest, self.accepted.peer)
                with self._send_lock:
                    self.sock.sendall(_RELEASE_RP_PDU)
                raise _Released
            elif kind == _ABORT:
                raise Aborted(sent=False)
            elif kind in (0x01, 0x02, 0x03, _RELEASE_RQ, _RELEASE_RP):
                raise Aborted(PROVIDER, UNEXPECTED_PDU)
            else:
                raise Aborted(PROVIDER, UNRECOGNIZED_PDU)
        return self._pending.pop()

    def _limit(self) -> int:
        return self.accepted.our_max_pdu or _UNLIMITED

    def _read_pdu(self) -> tuple[int, memoryview]:
        head = self._read(6)
        kind, length = _HEADER.unpack(head)
        if length > (self._limit() if kind == _P_DATA else 1 << 16):
            raise Aborted(PROVIDER, INVALID_PARAMETER)  # longer than we said we accept
        if length + 6 > len(self._buffer):
            self._buffer = bytearray(length + 6)
        return kind, self._read(length)

    def _read(self, n: int) -> memoryview:
        view = memoryview(self._buffer)[:n]
        got = 0
        while got < n:
            try:
                chunk = self.sock.recv_into(view[got:], n - got)
            except TimeoutError:  # silent for the network timeout: A-ABORT, as pynetdicom does
                raise Aborted(USER, 0) from None
            except OSError as exc:
                raise PeerGone("the connection failed") from exc
            if chunk == 0:
                raise PeerGone("the connection closed")
            got += chunk
        return view


_STREAM_PDV = 1 << 20  # a data set's fragment when the peer sets no maximum PDU length
_STREAM_BATCH = 1 << 18  # bytes of PDUs per sendall when streaming a data set
_UNLIMITED = 1 << 26  # our max PDU 0 means "no limit": one PDU is still held in memory, so cap it


def _pdus(context_id: int, kind: int, payload: bytes, room: int) -> bytearray:
    """`payload` (a command set: `kind` 0x01; a data set: 0x00) as P-DATA-TF PDUs of one PDV of
    at most `room` bytes each, the last one flagged."""
    room, out = max(room, 1), bytearray()
    for at in range(0, len(payload), room):
        part = payload[at : at + room]
        last = 0x02 if at + room >= len(payload) else 0x00
        out += _HEADER.pack(_P_DATA, len(part) + 6) + _ITEM.pack(len(part) + 2, context_id, kind | last)
        out += part
    return out


def _readable(sock: socket.socket) -> bool:
    """Has the peer sent something not read yet (or closed)? Never waits."""
    return bool(select.select([sock], [], [], 0)[0])


def _items(body: memoryview) -> list[tuple[int, int, memoryview]]:
    items, at = [], 0
    while at < len(body):
        if at + 6 > len(body):
            raise Aborted(PROVIDER, INVALID_PARAMETER)
        length, context_id, control = _ITEM.unpack_from(body, at)
        if length < 2 or at + 4 + length > len(body):
            raise Aborted(PROVIDER, INVALID_PARAMETER)
        items.append((context_id, control, body[at + 6 : at + 4 + length]))
        at += 4 + length
    if not items:
        raise Aborted(PROVIDER, INVALID_PARAMETER)
    return items


class CancelWatch:
    """Whether the peer's C-CANCEL-RQ of the request being answered (`message_id`) has arrived,
    reading what it sent meanwhile without waiting. A C-CANCEL of another message is ignored; any
    other request breaks the one-operation window negotiated (none proposed). A broken protocol
    or a peer gone reads as cancelled, and `check` raises it before anything more is sent."""

    def __init__(self, association: FastAssociation, message_id: int) -> None:
        self._association, self._message_id = association, message_id
        self.cancelled, self._broken = False, cast(Exception | None, None)
        self._looked_after = -1  # the association's `sends` when the socket was last looked at

    def __call__(self) -> bool:
        """Has the C-CANCEL arrived? The socket is looked at (a system call) once after each send,
        not before every response: one that arrives meanwhile is seen before the next batch of
        responses goes out."""
        if self._association.sends == self._looked_after:
            return self.cancelled
        self._looked_after = self._association.sends
        if not self.cancelled:
            try:
                while not self.cancelled and self._association.input_waiting():
                    self.take(self._association.next_command())
            except (PeerGone, OSError) as exc:
                self.cancelled, self._broken = True, exc
        return self.cancelled

    def take(self, command: dimse.Command) -> None:
        """A command that arrived while answering: a C-CANCEL, or the end of the association."""
        if command.field != dimse.C_CANCEL_RQ:
            raise Aborted(PROVIDER, UNEXPECTED_PDU)
        if command.responding_to == self._message_id:
            self.cancelled = True

    def check(self) -> None:
        if self._broken is not None:
            raise self._broken
