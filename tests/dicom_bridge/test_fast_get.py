"""C-GET on the facade's own association path (`dicom_bridge.fast_get`) against pynetdicom's,
serving the same archive in the same test: the same instances in the same bytes (as stored, or
decoded where the peer did not accept the stored syntax), the same statuses and counts; and a
C-CANCEL honoured between sub-operations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless
from pynetdicom import build_context
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from dicom_bridge.fast_server import FastServer
from facade.wiring import Services
from tests.archive import store
from tests.dicom_bridge.raw_peer import after_meta, answer_to, associate_rq, audit_counts, requestor
from tests.dicom_factory import new_uid
from tests.reactor import reactor_resumed
from tests.tools import dcmtk

STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def getscu(port: int, out: Path, *keys: str, extra: tuple[str, ...] = ()) -> dict[str, bytes]:
    """What getscu stored, by file name: the data sets' bytes (after their file meta)."""
    out.mkdir(parents=True, exist_ok=True)
    done = dcmtk(
        "getscu", port, "-S", "-aec", "FACADE", "-od", str(out), *extra, *(a for k in keys for a in ("-k", k))
    )
    assert done.returncode == 0, done.stderr
    return {p.name: after_meta(p.read_bytes()) for p in sorted(out.iterdir())}


@pytest.mark.parametrize(
    "extra",
    [
        (),  # uncompressed proposed: the RLE instance decoded
        ("-xe", "-pdu", "4096"),  # Explicit VR only, our fragments of 4 KB
        ("-xi",),  # Implicit VR only: Explicit stored instances re-encoded
        ("+xr",),  # RLE first: the RLE instance as stored
    ],
)
def test_getscu_gets_the_same_bytes_from_both_paths(
    servers: dict[bool, ThreadedAssociationServer],
    stored_study: dict[str, Any],
    services: Services,
    tmp_path: Path,
    extra: tuple[str, ...],
) -> None:
    big = store(
        services, tmp_path, study_uid=stored_study["uid"], series_uid=stored_study["series"][0],
        instance_number=3, rows=768, columns=768,
    )  # fmt: skip  # over the 1 MiB a sub-operation reads ahead: streamed from its file when sent
    keys = ("QueryRetrieveLevel=STUDY", f"StudyInstanceUID={stored_study['uid']}")
    ours = getscu(servers[True].server_address[1], tmp_path / "ours", *keys, extra=extra)
    theirs = getscu(servers[False].server_address[1], tmp_path / "theirs", *keys, extra=extra)
    assert len(ours) == 4 and ours == theirs
    assert any(big in name for name in ours)
    server = servers[True]
    assert isinstance(server, FastServer) and server.fast_associations == 1


def get(
    port: int,
    identifier: Dataset,
    storage: tuple[str, ...] = (str(MRImageStorage),),
    syntax: str = ExplicitVRLittleEndian,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """pynetdicom's C-GET: the SOP Instance UIDs stored, and every response's status, counts and
    Failed SOP Instance UID List."""
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    assoc = requestor(port, on_store, storage, (syntax,), get_syntax=syntax)
    try:
        responses = [
            (
                int(status.Status),
                *(
                    status.get(f"Number{of}Suboperations")
                    for of in ("OfRemaining", "OfCompleted", "OfFailed", "OfWarning")
                ),
                str(status.get("ErrorComment", "")),
                None if ds is None else list(ds.get("FailedSOPInstanceUIDList", [])),
            )
            for status, ds in assoc.send_c_get(identifier, STUDY_ROOT_GET)
        ]
    finally:
        assoc.release()
    return received, responses


def identifier(**keys: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_statuses_and_counts_are_pynetdicoms(
    servers: dict[bool, ThreadedAssociationServer], stored_study: dict[str, Any], syntax: str
) -> None:
    study = stored_study["uid"]
    for ds in (
        identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=study),
        identifier(
            QueryRetrieveLevel="SERIES", StudyInstanceUID=study, SeriesInstanceUID=stored_study["series"][1]
        ),
        identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=new_uid()),  # nothing: success
        identifier(QueryRetrieveLevel="STUDY", PatientID="PID-0001"),  # 0xA900: no unique key
        identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.*"),  # 0xA900
    ):
        ours = get(servers[True].server_address[1], ds, syntax=syntax)
        theirs = get(servers[False].server_address[1], ds, syntax=syntax)
        assert ours == theirs, ds


def test_what_cannot_be_sent_fails_with_its_uid(
    servers: dict[bool, ThreadedAssociationServer], stored_study: dict[str, Any]
) -> None:
    """A peer that offered to store CT only: every MR instance is a failed sub-operation
    (0xA702). pynetdicom lists each as an empty UID and still counts it remaining; ours names it
    (PS3.4 C.4.3.1.3.2) and counts nothing remaining."""
    ds = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=stored_study["uid"])
    ct = ("1.2.840.10008.5.1.4.1.1.2",)
    received, ours = get(servers[True].server_address[1], ds, storage=ct)
    _, theirs = get(servers[False].server_address[1], ds, storage=ct)
    assert received == [] and ours[-1][0] == theirs[-1][0] == 0xA702
    assert ours[-1][2:5] == theirs[-1][2:5] == (0, 3, 0)
    assert ours[-1][1] == 0 and theirs[-1][1] == 3
    assert sorted(ours[-1][-1]) == sorted(stored_study["sent"]) and theirs[-1][-1] == ["", "", ""]


def test_a_cancel_between_sub_operations(
    servers: dict[bool, ThreadedAssociationServer], services: Services, tmp_path: Path
) -> None:
    study, series = new_uid(), new_uid()
    for n in range(30):
        store(
            services, tmp_path, study_uid=study, series_uid=series, instance_number=n + 1, rows=4, columns=4
        )
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        if len(received) == 2:
            assoc.send_c_cancel(7, query_model=STUDY_ROOT_GET)
        return 0x0000

    assoc = requestor(servers[True].server_address[1], on_store)
    try:
        statuses = [
            s
            for s, _ in assoc.send_c_get(
                identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=study), STUDY_ROOT_GET, msg_id=7
            )
        ]
        assert statuses[-1].Status == 0xFE00
        assert 2 <= statuses[-1].NumberOfCompletedSuboperations < 30
        assert statuses[-1].NumberOfRemainingSuboperations == 30 - statuses[-1].NumberOfCompletedSuboperations
        reactor_resumed(assoc)  # tests/reactor.py: pynetdicom's race between two requests
        assert assoc.send_c_echo().Status == 0x0000, "the association carries on"
    finally:
        assoc.release()


def test_the_audit_counts_retrieves_alike(
    servers: dict[bool, ThreadedAssociationServer], stored_study: dict[str, Any], services: Services
) -> None:
    ds = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=stored_study["uid"])
    for server in servers.values():
        get(server.server_address[1], ds, storage=(str(MRImageStorage),), syntax=ExplicitVRLittleEndian)

    ours, theirs = audit_counts(services, 2)
    assert ours == theirs and ours["retrieves"] == 1 and ours["retrieved"] == 3


def test_a_c_get_association_is_accepted_as_pynetdicom_accepts_it(
    servers: dict[bool, ThreadedAssociationServer],
) -> None:
    """getscu's kind of request: C-GET, storage contexts with us as SCU (role selection), and
    retired storage classes we refuse, between the others: byte-identical A-ASSOCIATE-ACs."""
    rq = associate_rq(
        [
            build_context(STUDY_ROOT_GET),
            build_context("1.2.840.10008.5.1.4.1.1.5"),  # NM Image Storage (retired): refused
            build_context(MRImageStorage, [RLELossless, ExplicitVRLittleEndian]),
            build_context("1.2.840.10008.5.1.1.30"),  # Hardcopy Color Image Storage (retired): refused
            build_context(MRImageStorage, [ImplicitVRLittleEndian]),
        ],
        roles=((MRImageStorage, False, True),),
    )
    ours, theirs = (answer_to(servers[fast].server_address[1], rq) for fast in (True, False))
    assert ours[0] == 0x02 and ours == theirs
    server = servers[True]
    assert isinstance(server, FastServer) and server.fast_associations == 1


@pytest.mark.parametrize(
    "syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"]
)
def test_a_peer_that_accepts_only_a_lossless_compressed_syntax_gets_it_encoded(
    servers: dict[bool, ThreadedAssociationServer],
    stored_study: dict[str, Any],
    services: Services,
    tmp_path: Path,
    syntax: str,
) -> None:
    """RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless, on both association paths alike
    (`sub_operations.sending` chooses for both): uncompressed instances encoded into it, the RLE
    one decoded and encoded; the pixels as stored, the SOP Instance UIDs kept, the same bytes
    and statuses from both. openjpeg refuses images under 32 pixels a side: the 8x8 ones are
    failed sub-operations there, named in the Failed SOP Instance UID List; the 64x64 ones
    arrive."""
    study, series = stored_study["uid"], stored_study["series"][0]
    for n in (1, 2):
        uid = store(
            services,
            tmp_path,
            study_uid=study,
            series_uid=series,
            instance_number=10 + n,
            rows=64,
            columns=64,
        )
        stored_study["sent"][uid] = dcmread(tmp_path / f"{uid}.dcm")
    got: dict[bool, tuple[dict[str, Any], list[tuple[Any, ...]]]] = {}
    for fast, server in servers.items():
        arrived: dict[str, Any] = {}

        def on_store(event: Any, arrived: dict[str, Any] = arrived) -> int:
            ds = event.dataset
            ds.file_meta = event.file_meta
            arrived[str(ds.SOPInstanceUID)] = (
                str(event.context.transfer_syntax),
                ds.PixelData,
                ds.pixel_array,
            )
            return 0x0000

        assoc = requestor(server.server_address[1], on_store, syntaxes=(syntax,))
        try:
            ds = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=study)
            responses = [
                (
                    int(s.Status),
                    s.get("NumberOfCompletedSuboperations"),
                    s.get("NumberOfFailedSuboperations"),
                    sorted(f.get("FailedSOPInstanceUIDList", [])) if f is not None else None,
                )
                for s, f in assoc.send_c_get(ds, STUDY_ROOT_GET)
            ]
        finally:
            assoc.release()
        got[fast] = arrived, responses
    small = syntax == "1.2.840.10008.1.2.4.90"
    for fast, (arrived, responses) in got.items():
        status, completed, failed, failed_uids = responses[-1]
        assert status == (0xB000 if small else 0x0000), fast
        assert completed == len(arrived) == (2 if small else 5), fast
        assert failed == (3 if small else 0), fast
        if small and fast:  # pynetdicom lists each failed one as an empty UID
            eight = sorted(uid for uid, ds in stored_study["sent"].items() if ds.Rows == 8)
            assert failed_uids == eight
        for uid, (received_syntax, _, pixels) in arrived.items():
            assert received_syntax == syntax
            assert np.array_equal(pixels, stored_study["sent"][uid].pixel_array)
    ours, theirs = got[True][0], got[False][0]
    assert {uid: data for uid, (_, data, _) in ours.items()} == {
        uid: data for uid, (_, data, _) in theirs.items()
    }
