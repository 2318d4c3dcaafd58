"""The fast receive path (`dicom_bridge.fast_server`, `fast_association`) against real peers: which
associations take it, what it does with every transfer syntax and PDU size, and with bad input."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, build_context
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import MRImageStorage, StudyRootQueryRetrieveInformationModelFind, Verification
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy import select

from dicom_bridge.ae import AeConfig, storage_ae
from dicom_bridge.association_audit import AssociationAudit
from dicom_bridge.fast_server import FastServer
from dicom_bridge.storage_scp import StorageScp
from facade.serve import start_dicom
from facade.settings import Settings
from facade.wiring import Services
from storage.audit.store import AuditStore
from storage.dicom_index.models import InstanceRow
from tests.dicom_bridge.arriving import arriving
from tests.dicom_bridge.raw_peer import abort_received, answer_to, associate_raw, associate_rq, recv_exactly
from tests.dicom_factory import make_instance, new_uid, write
from tests.tools import require_tool, until


def start(services: Services, config: AeConfig | None = None) -> Any:
    """Our storage SCP (a `FastServer` unless `config` turns the fast path off)."""
    handlers = StorageScp(services.ingest).handlers() + AssociationAudit(services.audit).handlers()
    server = storage_ae(config or AeConfig()).start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=handlers
    )
    assert isinstance(server, FastServer) == (config is None or config.fast_path)
    return server


@pytest.fixture
def server(services: Services) -> Iterator[FastServer]:
    running = start(services)
    yield running
    running.shutdown()


def port_of(server: ThreadedAssociationServer) -> int:
    return int(server.server_address[1])


def stored_syntax(services: Services, sop_uid: str) -> str | None:
    with services.db.read() as s:
        row = s.scalars(select(InstanceRow).where(InstanceRow.sop_uid == sop_uid)).one_or_none()
        return None if row is None else row.transfer_syntax_uid


def audit_outcomes(services: Services, count: int) -> list[str]:
    """The outcomes of the association events, once there are `count` (recorded as they end)."""

    def events() -> list[str]:
        services.audit.flush()
        return sorted(e.outcome for e in AuditStore(services.db).events(source="dimse"))

    until(lambda: len(events()) >= count)
    return events()


def storescu(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("storescu")
    return subprocess.run(
        [tool, "-aec", "FACADE", *args[:-1], "127.0.0.1", str(port), args[-1]],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"TCP_NODELAY": "1"},
    )


def test_storescu_and_echoscu_take_the_fast_path(
    server: FastServer, services: Services, tmp_path: Path
) -> None:
    path = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "mr.dcm")
    assert storescu(port_of(server), str(path)).returncode == 0
    echoscu = require_tool("echoscu")
    subprocess.run([echoscu, "-aec", "FACADE", "127.0.0.1", str(port_of(server))], check=True, timeout=30)
    assert server.fast_associations == 2
    assert stored_syntax(services, dcmread(path).SOPInstanceUID) == ExplicitVRLittleEndian


@pytest.mark.parametrize(
    ("option", "syntax"),
    [
        ("-xi", ImplicitVRLittleEndian),
        ("-xe", ExplicitVRLittleEndian),
        ("-xb", ExplicitVRLittleEndian),  # proposes all three uncompressed: ours is Explicit LE first
        ("-xd", DeflatedExplicitVRLittleEndian),  # proposed alone
    ],
)
def test_each_uncompressed_proposal_is_stored(
    server: FastServer, services: Services, tmp_path: Path, option: str, syntax: str
) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=64, columns=64)
    path = write(ds, tmp_path / "mr.dcm")
    done = storescu(port_of(server), option, str(path))
    assert done.returncode == 0, done.stderr
    assert stored_syntax(services, ds.SOPInstanceUID) == syntax
    assert server.fast_associations == 1


def test_big_endian_alone_is_stored_as_big_endian(
    server: FastServer, services: Services, tmp_path: Path
) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=16, columns=16)
    path = write(ds, tmp_path / "mr.dcm")
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRBigEndian)
    assoc = ae.associate("127.0.0.1", port_of(server), ae_title="FACADE")
    assert assoc.is_established
    subprocess.run([require_tool("dcmconv"), "+tb", str(path), str(tmp_path / "big.dcm")], check=True)
    assert assoc.send_c_store(tmp_path / "big.dcm").Status == 0
    assoc.release()
    assert stored_syntax(services, ds.SOPInstanceUID) == ExplicitVRBigEndian


@pytest.mark.parametrize(("ours", "theirs"), [(4096, 4096), (4096, 131072), (0, 131072), (1 << 20, 16384)])
def test_max_pdu_both_ways(services: Services, tmp_path: Path, ours: int, theirs: int) -> None:
    """Our max PDU bounds what storescu sends (many small PDUs, or one big one), its max bounds
    what we answer; the instance arrives whole either way."""
    server = start(services, AeConfig(max_pdu=ours))
    try:
        ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=256, columns=256)  # 128 KB
        path = write(ds, tmp_path / "mr.dcm")
        done = storescu(port_of(server), "-pdu", str(theirs), str(path))
        assert done.returncode == 0, done.stderr
        assert stored_syntax(services, ds.SOPInstanceUID) == ExplicitVRLittleEndian
        assert server.fast_associations == 1
    finally:
        server.shutdown()


def test_a_mixed_association_goes_to_pynetdicom_and_works(
    server: FastServer, services: Services, tmp_path: Path
) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=8, columns=8)
    ae = AE(ae_title="PYSCU")
    ae.requested_contexts = [
        build_context(MRImageStorage),
        build_context(StudyRootQueryRetrieveInformationModelFind),
    ]
    assoc = ae.associate("127.0.0.1", port_of(server), ae_title="FACADE")
    assert assoc.is_established
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert server.fast_associations == 0
    assert stored_syntax(services, ds.SOPInstanceUID) is not None


def test_switched_off_every_association_is_pynetdicoms(services: Services) -> None:
    ae = storage_ae(AeConfig(fast_path=False))
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=StorageScp(services.ingest).handlers()
    )
    try:
        assert not isinstance(server, FastServer)
        echoscu = require_tool("echoscu")
        subprocess.run([echoscu, "-aec", "FACADE", "127.0.0.1", str(port_of(server))], check=True, timeout=30)
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("pdu", "expected"),
    [
        (b"\x09\x00\x00\x00\x00\x04\x00\x00\x00\x00", (2, 1)),  # unrecognized PDU type
        (b"\x01\x00\x00\x00\x00\x04\x00\x00\x00\x00", (2, 2)),  # an A-ASSOCIATE-RQ once associated
        (struct.pack(">BxI", 4, 100_000) + b"\0" * 100_000, (2, 6)),  # longer than our max PDU (after ours)
        (b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x09\x01\x03", (2, 6)),  # a PDV item longer than its PDU
        (b"\x04\x00\x00\x00\x00\x08\x00\x00\x00\x04\x03\x03\xff\xff", (0, 0)),  # a context not accepted
        (b"\x04\x00\x00\x00\x00\x08\x00\x00\x00\x04\x01\x03\xff\xff", (2, 6)),  # a command set of junk
    ],
)
def test_bad_pdus_are_aborted_and_the_service_goes_on(
    services: Services, pdu: bytes, expected: tuple[int, int]
) -> None:
    server = start(services, AeConfig(max_pdu=16384))
    try:
        sock = associate_raw(port_of(server))
        with sock:
            sock.sendall(pdu)
            assert abort_received(sock) == expected
        echoscu = require_tool("echoscu")
        subprocess.run([echoscu, "-aec", "FACADE", "127.0.0.1", str(port_of(server))], check=True, timeout=30)
        assert until(
            lambda: len(AuditStore(services.db).events(source="dimse")) == 2 or bool(services.audit.flush())
        )
        outcomes = sorted(e.outcome for e in AuditStore(services.db).events(source="dimse"))
        assert outcomes == ["aborted", "released"]
    finally:
        server.shutdown()


def test_garbage_instead_of_an_association_request(server: FastServer) -> None:
    """AA-1 (PS3.8 9.2.3): A-ABORT, and the connection closed at once; the service goes on."""
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert abort_received(sock) == (0, 0)
    echoscu = require_tool("echoscu")
    subprocess.run([echoscu, "-aec", "FACADE", "127.0.0.1", str(port_of(server))], check=True, timeout=30)
    assert server.fast_associations == 1


def test_c_echo_and_release_by_hand(server: FastServer) -> None:
    """A C-ECHO-RQ in two fragments, its response in one PDU, A-RELEASE-RQ answered."""
    from dicom_bridge.dimse_command import read_command

    command = (
        struct.pack("<HHI", 0, 2, 18)
        + b"1.2.840.10008.1.1\0"
        + struct.pack("<HHIH", 0, 0x100, 2, 0x30)
        + struct.pack("<HHIH", 0, 0x110, 2, 5)
        + struct.pack("<HHIH", 0, 0x800, 2, 0x0101)
    )
    group = struct.pack("<HHII", 0, 0, 4, len(command))
    whole = group + command
    with associate_raw(port_of(server)) as sock:
        for part, last in ((whole[:10], 0), (whole[10:], 2)):
            sock.sendall(struct.pack(">BxIIBB", 4, len(part) + 6, len(part) + 2, 1, 1 | last) + part)
        kind, size = struct.unpack(">BxI", recv_exactly(sock, 6))
        body = recv_exactly(sock, size)
        assert kind == 0x04 and body[4:6] == b"\x01\x03"
        rsp = read_command(body[6:])
        assert (rsp.field, rsp.has_data_set, rsp.affected_sop_class_uid) == (0x8030, False, Verification)
        assert b"\x00\x00\x20\x01\x02\x00\x00\x00\x05\x00" in body  # Message ID Being Responded To: 5
        assert b"\x00\x00\x00\x09\x02\x00\x00\x00\x00\x00" in body  # (0000,0900) Status 0x0000
        sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
        assert recv_exactly(sock, 10)[0] == 0x06
        assert sock.recv(1) == b""


def test_stopping_the_server_aborts_fast_associations(services: Services) -> None:
    server = start(services)
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port_of(server), ae_title="FACADE")
    assert assoc.is_established
    server.shutdown()
    assert until(lambda: assoc.is_aborted), "the association under way was aborted"
    ae.shutdown()


def test_a_silent_association_is_aborted_after_the_network_timeout(services: Services) -> None:
    server = start(services, AeConfig(network_timeout=0.5))
    try:
        with associate_raw(port_of(server)) as sock:
            started = time.monotonic()
            assert abort_received(sock) == (0, 0)
            assert time.monotonic() - started < 5
    finally:
        server.shutdown()


def test_a_peer_gone_mid_data_set_leaves_nothing_staged(
    server: FastServer, services: Services, tmp_path: Path
) -> None:
    """The command and a first data set fragment by hand, then the connection closed: the partial
    file (a slot among the held files) is removed, nothing is stored, and the association is
    audited as aborted."""
    command = (
        struct.pack("<HHI", 0, 2, len(MRImageStorage) + 1)
        + MRImageStorage.encode()
        + b"\0"
        + struct.pack("<HHIH", 0, 0x100, 2, 0x0001)
        + struct.pack("<HHIH", 0, 0x110, 2, 1)
        + struct.pack("<HHIH", 0, 0x700, 2, 0)
        + struct.pack("<HHIH", 0, 0x800, 2, 0x0000)
        + struct.pack("<HHI", 0, 0x1000, 8)
        + b"1.2.3.4\0"
    )
    rq = A_ASSOCIATE()
    rq.application_context_name = "1.2.840.10008.3.1.1.1"
    rq.calling_ae_title, rq.called_ae_title = "RAWSCU", "FACADE"
    context = build_context(MRImageStorage, ExplicitVRLittleEndian)
    context.context_id = 1
    rq.presentation_context_definition_list = [context]
    length = MaximumLengthNotification()
    length.maximum_length_received = 16384
    impl = ImplementationClassUIDNotification()
    impl.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.0"
    rq.user_information = [length, impl]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(rq)
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.settimeout(10)
        sock.sendall(pdu.encode())
        assert recv_exactly(sock, 6)[0] == 0x02
        # the start of a data set, longer than the file's write buffer: it reaches the file
        fragment = b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + b"\x08\x00\x08\x00CS\x00\x24" + b"A" * 9216
        for part, control in ((command, 0x03), (fragment, 0x00)):
            sock.sendall(struct.pack(">BxIIBB", 4, len(part) + 6, len(part) + 2, 1, control) + part)
        assert until(lambda: bool(arriving(services))), "the data set was being written"
    assert until(lambda: not arriving(services)), arriving(services)
    assert stored_syntax(services, "1.2.3.4") is None
    assert until(
        lambda: bool(services.audit.flush()) or len(AuditStore(services.db).events(source="dimse")) == 1
    )
    assert [e.outcome for e in AuditStore(services.db).events(source="dimse")] == ["aborted"]


def test_an_asynchronous_operations_window_is_not_granted(server: FastServer, services: Services) -> None:
    """As pynetdicom without an EVT_ASYNC_OPS handler: no item in the A-ASSOCIATE-AC, so the peer
    keeps the default window of one operation (PS3.7 D.3.3.3)."""
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=8, columns=8)
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked, window.maximum_number_operations_performed = 5, 5
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port_of(server), ae_title="FACADE", ext_neg=[window])
    assert assoc.is_established
    assert not any(
        isinstance(i, AsynchronousOperationsWindowNegotiation) for i in assoc.acceptor.user_information
    )
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert server.fast_associations == 1


def test_another_dimse_request_on_a_storage_association_is_unrecognized(server: FastServer) -> None:
    """A C-FIND-RQ where only Verification was negotiated: 0x0211, and the association goes on."""
    command = (
        struct.pack("<HHI", 0, 2, 18)
        + b"1.2.840.10008.1.1\0"
        + struct.pack("<HHIH", 0, 0x100, 2, 0x0020)
        + struct.pack("<HHIH", 0, 0x110, 2, 9)
        + struct.pack("<HHIH", 0, 0x800, 2, 0x0000)
    )
    identifier = b"\x08\x00\x52\x00\x06\x00STUDY "  # implicit VR: (0008,0052) Query/Retrieve Level
    with associate_raw(port_of(server)) as sock:
        for part, control in ((command, 0x03), (identifier, 0x02)):
            sock.sendall(struct.pack(">BxIIBB", 4, len(part) + 6, len(part) + 2, 1, control) + part)
        kind, size = struct.unpack(">BxI", recv_exactly(sock, 6))
        body = recv_exactly(sock, size)
        assert kind == 0x04
        assert b"\x00\x00\x00\x01\x02\x00\x00\x00\x20\x80" in body  # Command Field: C-FIND-RSP
        assert b"\x00\x00\x00\x09\x02\x00\x00\x00\x11\x02" in body  # Status 0x0211
        sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
        assert recv_exactly(sock, 10)[0] == 0x06


def test_admission_counts_both_paths_together(settings: Settings, services: Services) -> None:
    """One association per peer: a pynetdicom association (Verification and C-FIND proposed) keeps
    a fast one out, and the other way round."""
    server = start_dicom(
        settings.model_copy(update={"dicom_port": 0, "dicom_max_associations_per_peer": 1}), services
    )
    ae = AE(ae_title="PYSCU")
    fast = [Verification]
    mixed = [Verification, StudyRootQueryRetrieveInformationModelFind]
    try:
        for first, second in ((mixed, fast), (fast, mixed)):
            held = ae.associate("127.0.0.1", port_of(server), ae_title="FACADE", contexts=contexts(first))
            assert held.is_established
            refused = ae.associate("127.0.0.1", port_of(server), ae_title="FACADE", contexts=contexts(second))
            assert refused.is_rejected
            rj = refused.acceptor.primitive
            assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
            held.release()
            assert until(lambda c=second: _released_and_back(ae, port_of(server), c))
    finally:
        ae.shutdown()
        server.shutdown()


def contexts(abstract_syntaxes: list[str]) -> list[PresentationContext]:
    return [build_context(a) for a in abstract_syntaxes]


def _released_and_back(ae: AE, port: int, syntaxes: list[str]) -> bool:
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE", contexts=contexts(syntaxes))
    established = bool(assoc.is_established)
    if established:
        assoc.release()
    return established


def test_the_a_associate_ac_is_what_pynetdicom_sends(services: Services) -> None:
    """The same A-ASSOCIATE-RQ to both paths: byte-identical answers (contexts, transfer syntax of
    our preference, a context refused for its transfer syntax, role selection, max PDU, ids)."""
    rq = associate_rq(
        [
            build_context(Verification),
            build_context(
                MRImageStorage, ["1.2.840.10008.1.2.4.50", ImplicitVRLittleEndian, ExplicitVRLittleEndian]
            ),
            build_context(MRImageStorage, ["1.2.3.4"]),
        ],
        roles=((MRImageStorage, True, False),),
    )
    answers = []
    for fast in (True, False):
        server = start(services, AeConfig(fast_path=fast))
        try:
            answers.append(answer_to(port_of(server), rq))
            assert getattr(server, "fast_associations", 0) == (1 if fast else 0)
        finally:
            server.shutdown()
    assert answers[0][0] == 0x02
    assert answers[0] == answers[1]
