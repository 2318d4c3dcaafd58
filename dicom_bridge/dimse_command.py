"""DIMSE command sets, read and written by hand (PS3.7 6.3, E.1): group 0000 in Implicit VR Little
Endian, a handful of elements, so a C-STORE round trip decodes and encodes no pydicom Dataset.
Only what the facade's own association path (`dicom_bridge.fast_association`) needs: C-STORE,
C-ECHO, C-FIND, C-GET (with its C-STORE sub-operations) and C-CANCEL."""

from __future__ import annotations

import struct
from dataclasses import dataclass

C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_CANCEL_RQ = 0x0FFF
# Command Data Set Type (0000,0800): no data set follows; one does (any other value; we write this)
NO_DATA_SET, DATA_SET = 0x0101, 0x0001
# Requests a DIMSE provider may receive (PS3.7 E.1): their responses are the same | 0x8000
REQUESTS = {0x0001, 0x0010, 0x0020, 0x0021, 0x0030, 0x0100, 0x0110, 0x0120, 0x0130, 0x0140, 0x0150}
UNRECOGNIZED_OPERATION = 0x0211  # PS3.7 C.4.2

# element numbers in group 0000
_AFFECTED_CLASS, _COMMAND_FIELD, _MESSAGE_ID, _RESPONDING_TO = 0x0002, 0x0100, 0x0110, 0x0120
_DATA_SET_TYPE, _STATUS, _AFFECTED_INSTANCE = 0x0800, 0x0900, 0x1000
_ELEMENT = struct.Struct("<HHI")


class Malformed(ValueError):
    """A command set that cannot be read: the association is aborted (PS3.8 9.3.5)."""


@dataclass(frozen=True)
class Command:
    field: int
    message_id: int
    has_data_set: bool
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    responding_to: int = 0  # Message ID Being Responded To: a response's, a C-CANCEL's
    status: int | None = None  # a response's


def read_command(data: bytes | bytearray | memoryview) -> Command:
    """The elements we act on; unknown ones are skipped (their values are never looked at)."""
    values: dict[int, bytes] = {}
    view, at = memoryview(data), 0
    while at < len(view):
        if at + 8 > len(view):
            raise Malformed("truncated element header")
        group, element, length = _ELEMENT.unpack_from(view, at)
        at += 8
        if group != 0 or length == 0xFFFFFFFF or at + length > len(view):
            raise Malformed("not a command element")
        values[element] = bytes(view[at : at + length])
        at += length
    try:
        field = _us(values[_COMMAND_FIELD])
    except KeyError as exc:
        raise Malformed("no Command Field") from exc
    message_id, responding_to = values.get(_MESSAGE_ID), values.get(_RESPONDING_TO)
    status = values.get(_STATUS)
    data_set_type = values.get(_DATA_SET_TYPE)
    return Command(
        field=field,
        message_id=_us(message_id) if message_id is not None else 0,
        has_data_set=data_set_type is not None and _us(data_set_type) != NO_DATA_SET,
        affected_sop_class_uid=_text(values.get(_AFFECTED_CLASS, b"")),
        affected_sop_instance_uid=_text(values.get(_AFFECTED_INSTANCE, b"")),
        responding_to=_us(responding_to) if responding_to is not None else 0,
        status=_us(status) if status is not None else None,
    )


def response(
    field: int,
    responding_to: int,
    status: int,
    *,
    sop_class_uid: str = "",
    sop_instance_uid: str = "",
    error_comment: str | None = None,
    has_data_set: bool = False,
    sub_operations: SubOperations | None = None,
) -> bytes:
    """A response command set, elements in tag order, as pynetdicom writes it: Affected SOP Class
    UID, Command Field, Message ID Being Responded To, Command Data Set Type, Status, Error
    Comment, Affected SOP Instance UID, the Number of Remaining / Completed / Failed / Warning
    Sub-operations (PS3.7 9.3.1.2, 9.3.2.2, 9.3.3.2, 9.3.5.2)."""
    body = b""
    if sop_class_uid:
        body += _element(0x0002, _uid(sop_class_uid))
    body += _element(0x0100, struct.pack("<H", field))
    body += _element(0x0120, struct.pack("<H", responding_to))
    body += _element(0x0800, struct.pack("<H", DATA_SET if has_data_set else NO_DATA_SET))
    body += _element(0x0900, struct.pack("<H", status))
    if error_comment:
        comment = error_comment[:64].encode("ascii", "replace")
        body += _element(0x0902, comment + b" " * (len(comment) % 2))
    if sop_instance_uid:
        body += _element(0x1000, _uid(sop_instance_uid))
    if sub_operations is not None:
        counts = sub_operations
        if counts.remaining is not None:
            body += _element(0x1020, struct.pack("<H", counts.remaining))
        body += _element(0x1021, struct.pack("<H", counts.completed))
        body += _element(0x1022, struct.pack("<H", counts.failed))
        body += _element(0x1023, struct.pack("<H", counts.warning))
    return _element(0x0000, struct.pack("<I", len(body))) + body


@dataclass(frozen=True)
class SubOperations:
    """A C-GET response's counts (PS3.4 C.4.3.1.3); `remaining` None: not sent (a final one)."""

    remaining: int | None
    completed: int
    failed: int
    warning: int


def request(
    field: int, sop_class_uid: str, message_id: int, *, sop_instance_uid: str = "", priority: int = 2
) -> bytes:
    """A request command set with a data set following, as pynetdicom writes it: Affected SOP
    Class UID, Command Field, Message ID, Priority, Command Data Set Type, Affected SOP Instance
    UID when given (PS3.7 9.3.1.1, 9.3.2.1); priority as pynetdicom's default (2, low)."""
    body = (
        _element(0x0002, _uid(sop_class_uid))
        + _element(0x0100, struct.pack("<H", field))
        + _element(0x0110, struct.pack("<H", message_id))
        + _element(0x0700, struct.pack("<H", priority))
        + _element(0x0800, struct.pack("<H", DATA_SET))
    )
    if sop_instance_uid:
        body += _element(0x1000, _uid(sop_instance_uid))
    return _element(0x0000, struct.pack("<I", len(body))) + body


def _element(element: int, value: bytes) -> bytes:
    return _ELEMENT.pack(0, element, len(value)) + value


def _uid(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\0" * (len(raw) % 2)


def _us(value: bytes) -> int:
    if len(value) != 2:
        raise Malformed("US element of the wrong length")
    return int.from_bytes(value, "little")


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace").rstrip("\0 ")
