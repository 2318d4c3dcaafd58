"""The C-STORE SCP against real peers: dcmtk's storescu / echoscu, and pynetdicom as SCU."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config, build_context
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import Verification
from sqlalchemy import select

from dicom_bridge.ae import AeConfig, storage_ae
from dicom_bridge.storage_scp import StorageScp
from facade.serve import start_dicom
from facade.settings import Settings
from facade.wiring import Services
from mapping.dicom.part10 import peek_file_meta
from storage.dicom_index.models import InstanceRow
from storage.fhir_store.visibility import ALL
from tests.dicom_bridge import corpus
from tests.dicom_bridge.arriving import arriving, unused_slot
from tests.dicom_factory import make_instance, new_uid, write
from tests.reactor import reactor_resumed
from tests.tools import require_tool, until

NODELAY = {**os.environ, "TCP_NODELAY": "1"}


def start(services: Services, config: AeConfig | None = None) -> tuple[object, int]:
    server = storage_ae(config or AeConfig()).start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=StorageScp(services.ingest).handlers()
    )
    return server, server.server_address[1]


@pytest.fixture
def scp_port(services: Services) -> Iterator[int]:
    server, port = start(services)
    yield port
    server.shutdown()  # type: ignore[attr-defined]


def data_set_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return data[peek_file_meta(data[: 1 << 20]).dataset_offset :]


def stored_instances(services: Services) -> dict[str, tuple[str, str]]:
    with services.db.read() as s:
        return {r.sop_uid: (r.blob_key, r.transfer_syntax_uid) for r in s.scalars(select(InstanceRow))}


def send_raw(port: int, paths: list[Path], ae_title: str = "FACADE") -> list[int]:
    """pynetdicom as SCU, sending each file's encoded data set unchanged (no decoding)."""
    ae = AE(ae_title="PYSCU")
    contexts = {}
    for path in paths:
        meta = peek_file_meta(path.read_bytes()[: 1 << 16])
        contexts.setdefault((meta.sop_class_uid, meta.transfer_syntax_uid), None)
    ae.requested_contexts = [build_context(c, [t]) for c, t in contexts]
    old, _config.STORE_SEND_CHUNKED_DATASET = _config.STORE_SEND_CHUNKED_DATASET, True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
        assert assoc.is_established
        statuses = [int(assoc.send_c_store(path).Status) for path in paths]
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return statuses


def storescu_profile(directory: Path, files: list[Path]) -> Path:
    """A storescu configuration proposing each file's SOP class in its own transfer syntax only, so
    that storescu sends compressed files unchanged (by default it proposes uncompressed syntaxes)."""
    syntaxes, contexts = [], []
    for n, path in enumerate(files, 1):
        meta = peek_file_meta(path.read_bytes()[: 1 << 16])
        syntaxes.append(f"[TS{n}]\nTransferSyntax1 = {meta.transfer_syntax_uid}")
        contexts.append(f"PresentationContext{n} = {meta.sop_class_uid}\\TS{n}")
    config = directory / "storescu.cfg"
    config.write_text(
        "[[TransferSyntaxes]]\n"
        + "\n".join(syntaxes)
        + "\n[[PresentationContexts]]\n[Files]\n"
        + "\n".join(contexts)
        + "\n[[Profiles]]\n[Files]\nPresentationContexts = Files\n"
    )
    return config


def test_storescu_sends_every_transfer_syntax_in_one_association(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    storescu = require_tool("storescu")
    files = {**corpus.bundled(tmp_path), str(corpus.JPEGLossless): corpus.jpeg_lossless_process14(tmp_path)}
    config = storescu_profile(tmp_path, list(files.values()))
    result = subprocess.run(
        [
            storescu,
            "-xf",
            str(config),
            "Files",
            "-aec",
            "FACADE",
            "127.0.0.1",
            str(scp_port),
            *map(str, files.values()),
        ],
        env=NODELAY,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stored = stored_instances(services)
    assert len(stored) == len(files) == 13
    for ts, path in files.items():
        original = dcmread(path)
        key, stored_ts = stored[original.SOPInstanceUID]
        assert stored_ts == ts  # never transcoded
        with services.blobs.open(key) as f:
            received = dcmread(f)
        assert received.file_meta.TransferSyntaxUID == ts
        assert received.PixelData == original.PixelData, ts  # the (compressed) pixel data as sent
        study = services.search.read("ImagingStudy", original.StudyInstanceUID, visibility=ALL).body
        assert study is not None and study["numberOfInstances"] >= 1


def test_every_transfer_syntax_is_stored_byte_identical(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    """pynetdicom sends each file's encoded data set unchanged, so the blob must hold those bytes."""
    files = {**corpus.bundled(tmp_path), **corpus.htj2k(tmp_path)}
    if shutil.which("dcmcjpeg"):
        files[str(corpus.JPEGLossless)] = corpus.jpeg_lossless_process14(tmp_path)
    assert send_raw(scp_port, list(files.values())) == [0] * len(files)
    stored = stored_instances(services)
    for ts, path in files.items():
        key, stored_ts = stored[dcmread(path, stop_before_pixels=True).SOPInstanceUID]
        assert stored_ts == ts
        with services.blobs.open(key) as f:
            blob = f.read()
        assert blob[peek_file_meta(blob[: 1 << 20]).dataset_offset :] == data_set_bytes(path), ts


def test_a_study_over_one_association_has_the_right_counts(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    storescu = require_tool("storescu")
    study = new_uid()
    for s in (1, 2):
        series = new_uid()
        for i in range(1, 6):
            write(
                make_instance(
                    study_uid=study,
                    series_uid=series,
                    series_number=s,
                    instance_number=i,
                    modality="CT" if s == 2 else "MR",
                ),
                tmp_path / "in" / f"{s}-{i}.dcm",
            )
    subprocess.run(
        [storescu, "-aec", "FACADE", "+sd", "127.0.0.1", str(scp_port), str(tmp_path / "in")],
        env=NODELAY,
        check=True,
        capture_output=True,
        timeout=120,
    )
    body = services.search.read("ImagingStudy", study, visibility=ALL).body
    assert body is not None
    assert (body["numberOfSeries"], body["numberOfInstances"]) == (2, 10)
    assert [m["code"] for m in body["modality"]] == ["MR", "CT"]


def test_malformed_data_sets_are_refused_and_the_service_goes_on(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    good = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "good.dcm")
    data = good.read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(data[: len(data) - 3000])
    no_study = make_instance(study_uid=new_uid(), series_uid=new_uid())
    del no_study.StudyInstanceUID
    write(no_study, tmp_path / "no-study.dcm")
    statuses = send_raw(scp_port, [tmp_path / "truncated.dcm", tmp_path / "no-study.dcm"])
    assert statuses == [0xC000, 0xC000]
    assert send_raw(scp_port, [good]) == [0]  # a new association, same service
    echoscu = require_tool("echoscu")
    subprocess.run([echoscu, "-aec", "FACADE", "127.0.0.1", str(scp_port)], check=True, timeout=30)
    assert list(stored_instances(services)) == [dcmread(good).SOPInstanceUID]
    assert list(services.ingest.staging_dir().iterdir()) == []


def test_request_uid_must_match_the_data_set(scp_port: int, services: Services, tmp_path: Path) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = new_uid()  # the raw sender puts this in the C-STORE request
    path = tmp_path / "mismatch.dcm"
    ds.save_as(path, enforce_file_format=False)
    assert send_raw(scp_port, [path]) == [0xC000]
    assert stored_instances(services) == {}


def test_called_and_calling_ae_titles(services: Services) -> None:
    server, port = start(services, AeConfig(allowed_calling=["MODALITY1"]))
    try:
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context(Verification)
        assert not ae.associate("127.0.0.1", port, ae_title="FACADE").is_established
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(Verification)
        assert not ae.associate("127.0.0.1", port, ae_title="SOMEONE-ELSE").is_established
        assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
        assert assoc.is_established
        assert int(assoc.send_c_echo().Status) == 0
        assoc.release()
    finally:
        server.shutdown()  # type: ignore[attr-defined]


def test_readme_storescu_profile_sends_a_folder_of_compressed_files(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    """The first-look command of the README, with the shipped docs/storescu.cfg: storescu's default
    proposes uncompressed syntaxes only and stops at the first compressed file."""
    storescu = require_tool("storescu")
    folder = tmp_path / "folder"
    folder.mkdir()
    files = corpus.bundled(folder)
    (folder / "notes.txt").write_text("not DICOM")  # -nh: storescu goes on past it
    profile = Path(__file__).resolve().parents[2] / "docs" / "storescu.cfg"
    options = ["-nh", "-xf", str(profile), "Facade", "-aec", "FACADE", "+sd", "+r"]
    result = subprocess.run(
        [storescu, *options, "127.0.0.1", str(scp_port), str(folder)],
        env=NODELAY,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert "0006:020e" not in result.stderr, result.stderr
    stored = stored_instances(services)
    uncompressed = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
    for ts, path in files.items():
        stored_ts = stored[dcmread(path).SOPInstanceUID][1]
        # compressed files arrive as they are; uncompressed ones in the syntax we accept first
        assert stored_ts == ts or {ts, stored_ts} <= uncompressed


@pytest.fixture
def receive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where pynetdicom receives data sets, the system temporary directory: one of the test's own
    here, as TMPDIR makes it for `facade serve` (the facade itself never redirects it)."""
    directory = tmp_path / "receive"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.fixture
def facade_dicom(settings: Settings, services: Services) -> Iterator[int]:
    """The listener as `facade serve` starts it (staging cleaned)."""
    server = start_dicom(settings.model_copy(update={"dicom_port": 0}), services)
    yield server.server_address[1]
    server.shutdown()


def test_c_store_leaves_no_file_behind_and_sets_no_temporary_directory(
    receive_dir: Path, facade_dicom: int, services: Services, tmp_path: Path
) -> None:
    """pynetdicom's received file is adopted into staging, then the blob store: nothing stays where it
    was received or staged, stored or refused; and the process-wide temporary directory is left alone."""
    good = write(make_instance(study_uid=new_uid(), series_uid=new_uid()), tmp_path / "good.dcm")
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(good.read_bytes()[:-3000])
    assert send_raw(facade_dicom, [good, bad]) == [0, 0xC000]
    assert tempfile.tempdir == str(receive_dir)
    assert list(receive_dir.iterdir()) == []
    assert list(services.ingest.staging_dir().iterdir()) == []
    assert len(stored_instances(services)) == 1


@pytest.mark.parametrize("how", ["a-abort", "tcp-close"])
def test_an_aborted_c_store_leaves_nothing_in_staging(
    facade_dicom: int, services: Services, receive_dir: Path, tmp_path: Path, how: str
) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=1024, columns=1024)  # 2 MB
    encoded = data_set_bytes(write(ds, tmp_path / "big.dcm"))
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", facade_dicom, ae_title="FACADE")
    assert assoc.is_established
    req = C_STORE()
    req.MessageID, req.Priority = 1, 0
    req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    req.DataSet = BytesIO(encoded)
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    pdus = msg.encode_msg(assoc.accepted_contexts[0].context_id, assoc.acceptor.maximum_length)
    for _, pdu in zip(range(3), pdus, strict=False):  # the command and the start of the data set
        assoc.dul.send_pdu(pdu)
    # pynetdicom writes into the receive directory, the fast path straight into a held slot
    assert until(lambda: any(receive_dir.iterdir()) or bool(arriving(services))), "the SCP wrote nothing"
    if how == "a-abort":
        assoc.abort()
    else:  # the peer vanishes without a word
        assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    assert until(lambda: not any(receive_dir.iterdir())), list(receive_dir.iterdir())
    assert until(lambda: not arriving(services)), arriving(services)
    ae.shutdown()
    assert stored_instances(services) == {}


def test_starting_the_listener_cleans_staging(settings: Settings, services: Services) -> None:
    stale = services.ingest.staging_dir() / "tmp1234.dcm"
    stale.write_bytes(b"\0" * 128 + b"DICM")
    os.utime(stale, (time.time() - 5, time.time() - 5))
    server = start_dicom(settings.model_copy(update={"dicom_port": 0}), services)
    try:
        assert not stale.exists()
    finally:
        server.shutdown()


def start_facade_dicom(settings: Settings, services: Services, **limits: object) -> tuple[object, int]:
    server = start_dicom(settings.model_copy(update={"dicom_port": 0, **limits}), services)
    return server, server.server_address[1]


def test_idle_connections_do_not_lock_senders_out(settings: Settings, services: Services) -> None:
    echoscu = require_tool("echoscu")
    # A long ARTIM here: the sender must get in while the idle sockets are still open.
    server, port = start_facade_dicom(
        settings, services, dicom_max_associations=4, dicom_max_associations_per_peer=2, dicom_acse_timeout=30
    )
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
    try:
        started = time.monotonic()
        done = subprocess.run(
            [echoscu, "-aec", "FACADE", "127.0.0.1", str(port)], check=False, capture_output=True, timeout=20
        )
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 5
    finally:
        for s in idle:
            s.close()
        server.shutdown()  # type: ignore[attr-defined]


def test_a_connection_that_never_associates_is_closed(settings: Settings, services: Services) -> None:
    server, port = start_facade_dicom(settings, services, dicom_acse_timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(10)
            started = time.monotonic()
            assert s.recv(1) == b""  # closed by the SCP
            assert time.monotonic() - started < 5
    finally:
        server.shutdown()  # type: ignore[attr-defined]


def test_associations_are_limited_per_peer_address(settings: Settings, services: Services) -> None:
    server, port = start_facade_dicom(
        settings, services, dicom_max_associations=3, dicom_max_associations_per_peer=2
    )
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(Verification)
    held = []
    try:
        held = [ae.associate("127.0.0.1", port, ae_title="FACADE") for _ in range(2)]
        assert all(a.is_established for a in held)
        third = ae.associate("127.0.0.1", port, ae_title="FACADE")
        assert third.is_rejected
        rj = third.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
        other = ae.associate("127.0.0.1", port, ae_title="FACADE", bind_address=("127.0.0.2", 0))
        assert other.is_established, "another peer still gets in"
        assert other.send_c_echo().Status == 0x0000
        held.append(other)
        fourth = ae.associate("127.0.0.1", port, ae_title="FACADE", bind_address=("127.0.0.3", 0))
        assert fourth.is_rejected, "the total limit holds too"
        held[0].release()
        assert until(lambda: ae.associate("127.0.0.1", port, ae_title="FACADE").is_established)
    finally:
        for a in held:
            if a.is_established:
                a.release()
        ae.shutdown()
        server.shutdown()  # type: ignore[attr-defined]


def test_an_over_long_request_uid_gets_a_failure_status(
    facade_dicom: int, services: Services, tmp_path: Path
) -> None:
    """PS3.5 9.1: a UID has at most 64 characters. An 80-character Affected SOP Instance UID in
    the command set is answered 0xC000 (the association carries on), not aborted without status."""
    long_uid = "1.2.826.0.1.3680043.8.498." + "1" * 54
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), sop_uid=long_uid)
    encoded = data_set_bytes(write(ds, tmp_path / "long.dcm"))
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", facade_dicom, ae_title="FACADE")
    assert assoc.is_established
    try:
        req = C_STORE()
        req.MessageID, req.Priority = 7, 0
        req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = ds.SOPClassUID, new_uid()
        req.DataSet = BytesIO(encoded)
        msg = C_STORE_RQ()
        msg.primitive_to_message(req)
        msg.command_set.AffectedSOPInstanceUID = long_uid  # what the primitive refuses to hold
        cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == ds.SOPClassUID)
        # Pause our side's reactor, as pynetdicom's send_c_store does: else it may take the response
        # off the queue first (and drop it as unexpected), and get_msg waits out the DIMSE timeout.
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.0001)
        try:
            for pdu in msg.encode_msg(cx.context_id, assoc.acceptor.maximum_length):
                assoc.dul.send_pdu(pdu)
            _, rsp = assoc.dimse.get_msg(block=True)  # the response, or None when the SCP aborted
        finally:
            assoc._reactor_checkpoint.set()
        assert rsp is not None, "aborted without a status"
        assert rsp.Status == 0xC000
        assert rsp.MessageIDBeingRespondedTo == 7
        assert rsp.AffectedSOPInstanceUID is None  # optional, and it could not equal the request's
        assert assoc.is_established
        reactor_resumed(assoc)  # tests/reactor.py: pynetdicom's race between two requests
        assert assoc.send_c_echo().Status == 0x0000, "the association carries on"
    finally:
        if assoc.is_established:
            assoc.release()
    assert stored_instances(services) == {}
    assert list(services.ingest.staging_dir().iterdir()) == []


def test_an_instance_refused_for_another_patient_leaves_no_file(
    scp_port: int, services: Services, tmp_path: Path
) -> None:
    storescu = require_tool("storescu")
    study = new_uid()
    first = write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="A"), tmp_path / "a.dcm")
    other = write(make_instance(study_uid=study, series_uid=new_uid(), patient_id="B"), tmp_path / "b.dcm")
    send = [storescu, "-aec", "FACADE", "127.0.0.1", str(scp_port)]
    subprocess.run([*send, str(first)], check=True, timeout=30)
    refused = subprocess.run([*send, str(other)], check=False, capture_output=True, timeout=30)
    assert refused.returncode != 0
    assert send_raw(scp_port, [other]) == [0xC001]
    root = services.ingest.staging_dir().parent
    on_disk = [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name != ".lock" and not unused_slot(p)
    ]
    assert on_disk == [key for key, _ in stored_instances(services).values()]
    assert len(on_disk) == 1
