"""A DICOM peer written by hand, for the tests of the facade's own association path: requests
built from pynetdicom's PDU classes, bytes read as they come, and what both paths recorded; and
the pynetdicom C-GET requestor of the C-GET tests."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from facade.wiring import Services
from storage.audit.store import AuditStore
from tests.tools import until

STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def associate_rq(
    contexts: list[PresentationContext],
    *,
    max_pdu: int = 16384,
    roles: tuple[tuple[str, bool, bool], ...] = (),
) -> bytes:
    """An A-ASSOCIATE-RQ from RAWSCU to FACADE: `contexts` numbered 1, 3, 5, …; `roles` as
    (SOP class, SCU role, SCP role) selection items."""
    rq = A_ASSOCIATE()
    rq.application_context_name = "1.2.840.10008.3.1.1.1"
    rq.calling_ae_title, rq.called_ae_title = "RAWSCU", "FACADE"
    for n, context in enumerate(contexts):
        context.context_id = 2 * n + 1
    rq.presentation_context_definition_list = contexts
    length, impl = MaximumLengthNotification(), ImplementationClassUIDNotification()
    length.maximum_length_received = max_pdu
    impl.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.0"
    items: list[object] = [length, impl]
    for sop_class, scu, scp in roles:
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid, role.scu_role, role.scp_role = sop_class, scu, scp
        items.append(role)
    rq.user_information = items  # type: ignore[assignment]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(rq)
    return bytes(pdu.encode())


def associate_raw(
    port: int, max_pdu: int = 16384, context: PresentationContext | None = None
) -> socket.socket:
    """A socket on which an association of one context (id 1; default: Verification) was
    accepted, for writing bytes by hand."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    sock.sendall(associate_rq([context or build_context(Verification)], max_pdu=max_pdu))
    kind, size = struct.unpack(">BxI", recv_exactly(sock, 6))
    assert kind == 0x02, "A-ASSOCIATE-AC"
    recv_exactly(sock, size)
    return sock


def answer_to(port: int, rq: bytes) -> bytes:
    """The bytes of the answer to the A-ASSOCIATE-RQ `rq`; the association then released."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        sock.sendall(rq)
        head = recv_exactly(sock, 6)
        answer = head + recv_exactly(sock, struct.unpack(">BxI", head)[1])
        sock.sendall(RELEASE_RQ)
        assert recv_exactly(sock, 10)[0] == 0x06
    return answer


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "closed"
        data += chunk
    return data


def abort_received(sock: socket.socket) -> tuple[int, int]:
    """(source, reason) of the A-ABORT the SCP sent, after which it closed."""
    pdu = recv_exactly(sock, 10)
    assert pdu[0] == 0x07, pdu
    assert sock.recv(1) == b""
    return pdu[8], pdu[9]


def audit_counts(services: Services, count: int) -> list[dict[str, int]]:
    """The counts of the DIMSE association events, once there are `count` of them."""

    def events() -> list[dict[str, int]]:
        services.audit.flush()
        return [dict(e.counts or {}) for e in AuditStore(services.db).events(source="dimse")]

    until(lambda: len(events()) >= count)
    return events()


def after_meta(part10: bytes) -> bytes:
    """The data set of a Part 10 file: after the preamble, "DICM" and the group 0002 its File Meta
    Information Group Length (0002,0000) measures."""
    assert part10[128:132] == b"DICM" and part10[132:140] == b"\x02\x00\x00\x00UL\x04\x00"
    return part10[144 + int.from_bytes(part10[140:144], "little") :]


def requestor(
    port: int,
    on_store: Callable[[Any], int],
    storage: tuple[str, ...] = (MR_IMAGE_STORAGE,),
    syntaxes: tuple[str, ...] = (EXPLICIT_VR_LE,),
    *,
    get_syntax: str | None = None,
) -> Association:
    """A pynetdicom C-GET requestor on `port`: Study Root GET (in `get_syntax`, default all
    pynetdicom proposes), Verification, and `storage` in `syntaxes` with itself as storage SCP."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(STUDY_ROOT_GET, *([get_syntax] if get_syntax else []))
    ae.add_requested_context(Verification)
    for sop_class in storage:
        ae.add_requested_context(sop_class, list(syntaxes))
    roles = [build_role(sop_class, scp_role=True) for sop_class in storage]
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="FACADE", ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert assoc.is_established
    return assoc
