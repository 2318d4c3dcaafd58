"""C-MOVE SCP (PS3.4 C.4.2) through the serving composition: movescu and pynetdicom ask, a
pynetdicom storage SCP on 127.0.0.1 is the registered destination."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless
from pynetdicom import AE, evt

from dicom_bridge.move_scp import proposed_contexts
from facade.wiring import Services
from tests.dicom_factory import new_uid
from tests.tools import require_tool

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
CT = "1.2.840.10008.5.1.4.1.1.2"
JLS = "1.2.840.10008.1.2.4.80"


class Destination:
    """A storage SCP on 127.0.0.1 that keeps (transfer syntax, pixel data) per SOP Instance UID."""

    def __init__(self, syntaxes: list[str]) -> None:
        self.received: dict[str, tuple[str, bytes]] = {}
        self.datasets: dict[str, Dataset] = {}
        ae = AE(ae_title="DEST")
        ae.add_supported_context(MR, syntaxes)
        ae.add_supported_context("1.2.840.10008.1.1")  # Verification: what a refusal associates for
        self.server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        self.port = self.server.server_address[1]

    def _on_store(self, event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.received[str(ds.SOPInstanceUID)] = (str(event.context.transfer_syntax), ds.PixelData)
        self.datasets[str(ds.SOPInstanceUID)] = ds
        return 0x0000


@pytest.fixture
def destination(services: Services) -> Iterator[Destination]:
    dest = Destination([str(ExplicitVRLittleEndian), str(RLELossless)])
    services.peers.add("DEST", "127.0.0.1", dest.port)
    yield dest
    dest.server.shutdown()


def test_movescu_moves_a_study_to_a_registered_destination(
    port: int, destination: Destination, stored_study: dict[str, Any]
) -> None:
    done = subprocess.run(
        [
            require_tool("movescu"), "-S", "-aec", "FACADE", "-aem", "DEST", "-v",
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={stored_study['uid']}",
            "127.0.0.1", str(port),
        ],
        check=False, capture_output=True, text=True, timeout=60, env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "Received Final Move Response (Success)" in log, log
    assert set(destination.received) == set(stored_study["sent"])
    for uid, (syntax, data) in destination.received.items():
        sent = stored_study["sent"][uid]
        assert syntax == sent.file_meta.TransferSyntaxUID, "as stored: the destination accepted RLE"
        assert data == sent.PixelData


def test_a_destination_without_the_stored_syntax_gets_it_decoded(
    port: int, services: Services, stored_study: dict[str, Any]
) -> None:
    plain = Destination([str(ImplicitVRLittleEndian)])
    services.peers.add("PLAIN", "127.0.0.1", plain.port)
    try:
        statuses = _move(port, "PLAIN", _study_identifier(stored_study["uid"]))
        assert statuses[-1].Status == 0x0000 and statuses[-1].NumberOfCompletedSuboperations == 3
        assert {syntax for syntax, _ in plain.received.values()} == {str(ImplicitVRLittleEndian)}
    finally:
        plain.server.shutdown()


def test_a_destination_that_takes_only_jpeg_ls_gets_it_encoded(
    port: int, services: Services, stored_study: dict[str, Any]
) -> None:
    """We propose the lossless syntaxes we encode into, each in a context of its own; a
    destination that accepts only JPEG-LS Lossless for MR gets every instance encoded into it
    (the RLE one decoded first), the pixels as stored (`sub_operations.sending`, as for C-GET)."""
    jls = Destination([JLS])
    services.peers.add("JLSONLY", "127.0.0.1", jls.port)
    try:
        final = _move(port, "JLSONLY", _study_identifier(stored_study["uid"]))[-1]
        assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 3
        assert {syntax for syntax, _ in jls.received.values()} == {JLS}
        for uid, ds in jls.datasets.items():
            assert np.array_equal(ds.pixel_array, stored_study["sent"][uid].pixel_array)
    finally:
        jls.server.shutdown()


def test_the_contexts_proposed_to_a_destination() -> None:
    """Per SOP class: uncompressed, each stored syntax, then each lossless syntax we encode
    into that is not already there."""
    records: list[Any] = [
        {"sop_class_uid": MR, "transfer_syntax": str(RLELossless)},
        {"sop_class_uid": MR, "transfer_syntax": str(ExplicitVRLittleEndian)},
        {"sop_class_uid": CT, "transfer_syntax": "1.2.840.10008.1.2.4.50"},
    ]
    proposed = [
        (str(cx.abstract_syntax), [str(t) for t in cx.transfer_syntax]) for cx in proposed_contexts(records)
    ]
    native = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
    assert proposed == [
        (CT, native),
        (MR, native),
        (CT, ["1.2.840.10008.1.2.4.50"]),
        (CT, [str(RLELossless)]),  # RLE: MR's as stored, CT's to encode into
        (MR, [str(RLELossless)]),
        (CT, [JLS]),
        (MR, [JLS]),
        (CT, ["1.2.840.10008.1.2.4.90"]),
        (MR, ["1.2.840.10008.1.2.4.90"]),
    ]


def test_refusals(port: int, destination: Destination, stored_study: dict[str, Any]) -> None:
    assert _move(port, "NOBODY", _study_identifier(stored_study["uid"]))[-1].Status == 0xA801
    no_key = Dataset()
    no_key.QueryRetrieveLevel = "SERIES"
    no_key.StudyInstanceUID = stored_study["uid"]
    assert _move(port, "DEST", no_key)[-1].Status == 0xA900
    final = _move(port, "DEST", _study_identifier(new_uid()))[-1]
    assert (final.Status, final.NumberOfCompletedSuboperations) == (0x0000, 0)
    assert destination.received == {}


def test_an_unreachable_destination_is_0xa801(
    port: int, services: Services, stored_study: dict[str, Any]
) -> None:
    gone = Destination([str(ExplicitVRLittleEndian)])
    services.peers.add("GONE", "127.0.0.1", gone.port)
    gone.server.shutdown()
    assert _move(port, "GONE", _study_identifier(stored_study["uid"]))[-1].Status == 0xA801


def _study_identifier(uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = uid
    return ds


def _move(port: int, destination: str, identifier: Dataset) -> list[Dataset]:
    ae = AE(ae_title="MOVESCU")
    ae.add_requested_context(STUDY_ROOT_MOVE)
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert assoc.is_established
    try:
        return [status for status, _ in assoc.send_c_move(identifier, destination, STUDY_ROOT_MOVE)]
    finally:
        assoc.release()


def test_queries_and_retrieves_are_in_the_audit_trail(
    port: int, services: Services, destination: Destination, stored_study: dict[str, Any]
) -> None:
    from tests.dicom_bridge.test_association_audit import associations

    _move(port, "DEST", _study_identifier(stored_study["uid"]))
    _move(port, "NOBODY", _study_identifier(stored_study["uid"]))
    find = Dataset()
    find.QueryRetrieveLevel = "STUDY"
    find.StudyInstanceUID = ""
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.2.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    list(assoc.send_c_find(find, "1.2.840.10008.5.1.4.1.2.2.1"))
    assoc.release()
    events = associations(services, 3)
    [found] = [e.counts for e in events if e.client_id == "FINDSCU"]
    assert found == {"stored": 0, "refused": 0, "failed": 0, "queries": 1, "found": 1}
    moves = sorted(
        (e.counts for e in events if e.client_id == "MOVESCU"), key=lambda c: c.get("retrieved", 0)
    )
    assert [(c.get("retrieves"), c.get("retrieved")) for c in moves] == [(1, None), (1, 3)]
    assert str(stored_study["uid"]) not in " ".join(str(e.counts) + str(e.peer) for e in events)
