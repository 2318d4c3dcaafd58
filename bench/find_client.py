"""A C-FIND requestor for the benchmarks that does not poll: one association per query over a
blocking socket, the request written and the responses read by hand (PS3.8 9.3, PS3.7 9.1.2).

pynetdicom's requestor sleeps a millisecond between looks at its socket and hands every response
from its reader thread to ours: with 50 matches it added ~100 ms to every query, whichever server
answered, and measured itself. dcmtk's findscu costs a process start per query. This measures the
server: associate, one C-FIND, every response read to the final one, release.
"""

from __future__ import annotations

import socket
import struct
import time

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext

from dicom_bridge import dimse_command as dimse

_HEADER = struct.Struct(">BxI")
_ITEM = struct.Struct(">IBB")
_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")
_RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
_PENDING = (0xFF00, 0xFF01)
MAX_PDU = 16384  # what dcmtk's tools offer by default
_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)  # proposed, in this order


class Refused(RuntimeError):
    """The server did not accept the association or the context, or broke the protocol."""


def timed_find(
    port: int, called_ae: str, sop_class: str, identifier: Dataset, *, host: str = "127.0.0.1"
) -> tuple[float, int, int]:
    """Milliseconds from connecting to the final response, the number of pending responses, and
    the final status. What the client writes (the A-ASSOCIATE-RQ, the request's command and its
    identifier in both transfer syntaxes) is made before the clock starts: it is the same for
    every server, and made by pynetdicom and pydicom it took ~0.4 ms of each query."""
    associate = _associate_rq(called_ae, sop_class)
    command = _pdu(dimse.request(dimse.C_FIND_RQ, sop_class, 1, priority=0), 0x03)
    data = {str(syntax): _pdu(_encode(identifier, UID(syntax)), 0x02) for syntax in _SYNTAXES}
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(associate)
        kind, accepted = _read_pdu(sock)
        if kind != 0x02:
            raise Refused(f"association answered with PDU type {kind}")
        sock.sendall(command + data[_accepted_syntax(accepted)])
        matches, status = 0, None
        reader = _Reader(sock)
        command_bytes = bytearray()
        while status is None:
            kind, body = reader.pdu()
            if kind != 0x04:
                raise Refused(f"PDU type {kind} before the final response")
            at = 0
            while at < len(body):
                length, _, control = _ITEM.unpack_from(body, at)
                start, at = at + 6, at + 4 + length
                if not control & 0x01:
                    continue  # a data set fragment: the identifier of a pending response
                if control & 0x02 and not command_bytes:  # a whole command in one PDV: the usual case
                    code = _status(body, start, at)
                else:
                    command_bytes += body[start:at]
                    if not control & 0x02:
                        continue
                    code = _status(command_bytes, 0, len(command_bytes))
                    command_bytes.clear()
                if code in _PENDING:
                    matches += 1
                else:
                    status = code
        sock.sendall(_RELEASE_RQ)
        kind, _ = reader.pdu()
        if kind != 0x06:
            raise Refused(f"release answered with PDU type {kind}")
    return (time.perf_counter() - started) * 1000, matches, status


def _associate_rq(called_ae: str, sop_class: str) -> bytes:
    context = PresentationContext()
    context.context_id = 1
    context.abstract_syntax = UID(sop_class)
    context.transfer_syntax = [UID(syntax) for syntax in _SYNTAXES]
    length, impl = MaximumLengthNotification(), ImplementationClassUIDNotification()
    length.maximum_length_received = MAX_PDU
    impl.implementation_class_uid = UID("1.2.826.0.1.3680043.10.543.1")
    primitive = A_ASSOCIATE()
    primitive.application_context_name = UID("1.2.840.10008.3.1.1.1")
    primitive.calling_ae_title = "BENCH"
    primitive.called_ae_title = called_ae
    primitive.presentation_context_definition_list = [context]
    primitive.user_information = [length, impl]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _accepted_syntax(body: bytes) -> str:
    """The transfer syntax of the first accepted presentation context of an A-ASSOCIATE-AC's
    body (PS3.8 9.3.3: 68 bytes of fixed fields, then items; a context is item 0x21 with its
    result, and the syntax sub-item 0x40)."""
    at = 68
    while at + 4 <= len(body):
        kind, length = body[at], int.from_bytes(body[at + 2 : at + 4], "big")
        if kind == 0x21 and body[at + 6] == 0x00 and body[at + 8] == 0x40:
            size = int.from_bytes(body[at + 10 : at + 12], "big")
            syntax = bytes(body[at + 12 : at + 12 + size]).rstrip(b"\0 ").decode("ascii")
            if syntax in _SYNTAXES:
                return syntax
        at += 4 + length
    raise Refused("the C-FIND context was not accepted")


def _encode(identifier: Dataset, syntax: UID) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = syntax.is_implicit_VR, syntax.is_little_endian
    write_dataset(fp, identifier)
    return bytes(fp.getvalue())


def _pdu(value: bytes, control: int) -> bytes:
    """One P-DATA-TF of one PDV (the whole command or data set: small, below MAX_PDU)."""
    return _HEADER.pack(0x04, len(value) + 6) + _ITEM.pack(len(value) + 2, 1, control) + value


def _read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    kind, length = _HEADER.unpack(_read(sock, 6))
    return kind, _read(sock, length)


def _read(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise Refused("the connection closed")
        data += chunk
    return bytes(data)


class _Reader:
    """PDUs from the socket, read in large chunks: the responses of a large answer arrive many
    to a TCP segment, and a receive call for each PDU's header and body cost the client more
    than the server's sending them."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock, self._buffer, self._at = sock, b"", 0

    def pdu(self) -> tuple[int, memoryview]:
        """The next PDU's type and body (valid until the next call)."""
        self._fill(6)
        kind, length = _HEADER.unpack_from(self._buffer, self._at)
        self._fill(6 + length)
        start = self._at + 6
        self._at = start + length
        return kind, memoryview(self._buffer)[start : self._at]

    def _fill(self, n: int) -> None:
        if len(self._buffer) - self._at >= n:
            return
        data = bytearray(self._buffer[self._at :])
        while len(data) < n:
            chunk = self._sock.recv(max(1 << 16, n - len(data)))
            if not chunk:
                raise Refused("the connection closed")
            data += chunk
        self._buffer, self._at = bytes(data), 0


def _status(command: bytes | bytearray | memoryview, at: int, end: int) -> int:
    """The Status (0000,0900) of a response command set (Implicit VR Little Endian)."""
    while at + 8 <= end:
        group, element, length = _ELEMENT.unpack_from(command, at)
        at += 8
        if group != 0 or at + length > end:
            break
        if element == 0x0900 and length == 2:
            return int(_US.unpack_from(command, at)[0])
        at += length
    raise Refused("a response without a Status")
