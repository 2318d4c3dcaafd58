"""C-GET SCP (PS3.4 C.4.3) through the serving composition, against getscu and pynetdicom."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian, RLELossless
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]

from tests.dicom_bridge.raw_peer import requestor
from tests.dicom_factory import new_uid
from tests.tools import require_tool

STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def getscu(port: int, out: Path, *keys: str, extra: tuple[str, ...] = ()) -> tuple[list[Dataset], str]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [require_tool("getscu"), "-S", "-aec", "FACADE", "-od", str(out), "-v", *extra]
    for key in keys:
        cmd += ["-k", key]
    done = subprocess.run(
        [*cmd, "127.0.0.1", str(port)], check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    return [dcmread(p) for p in sorted(out.iterdir())], done.stdout + done.stderr


def pixels(ds: Dataset) -> np.ndarray:  # type: ignore[type-arg]
    return ds.pixel_array


def test_getscu_retrieves_a_study_decoding_what_it_did_not_accept(
    port: int, stored_study: dict[str, Any], tmp_path: Path
) -> None:
    received, log = getscu(
        port, tmp_path / "r", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={stored_study['uid']}"
    )
    assert {str(ds.SOPInstanceUID) for ds in received} == set(stored_study["sent"]), log
    for ds in received:
        original = stored_study["sent"][str(ds.SOPInstanceUID)]
        assert not ds.file_meta.TransferSyntaxUID.is_compressed, "getscu proposed uncompressed syntaxes only"
        assert np.array_equal(pixels(ds), pixels(original))
        assert ds.PatientName == original.PatientName


def test_a_peer_that_accepts_the_stored_syntax_gets_it_as_stored(
    port: int, stored_study: dict[str, Any]
) -> None:
    """We choose uncompressed first when a context offers several (our receiving preference), so
    a peer that wants RLE as stored proposes it alone, as here."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.StudyInstanceUID = stored_study["uid"]
    identifier.SeriesInstanceUID = stored_study["series"][1]
    received, statuses = _get(port, identifier, syntaxes=(str(RLELossless),))
    [(uid, (syntax, data))] = received.items()
    assert syntax == RLELossless and statuses[-1].Status == 0x0000
    assert data == stored_study["sent"][uid].PixelData, "the stored bit stream, not re-encoded"


def test_image_level_and_uid_lists(port: int, stored_study: dict[str, Any]) -> None:
    uids = sorted(
        uid for uid, ds in stored_study["sent"].items() if ds.SeriesInstanceUID == stored_study["series"][0]
    )
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = stored_study["uid"]
    identifier.SeriesInstanceUID = stored_study["series"][0]
    identifier.SOPInstanceUID = uids
    received, statuses = _get(port, identifier)
    assert sorted(received) == uids
    assert statuses[-1].Status == 0x0000 and statuses[-1].NumberOfCompletedSuboperations == 2


def test_refusals(port: int, stored_study: dict[str, Any]) -> None:
    no_uid = Dataset()
    no_uid.QueryRetrieveLevel = "STUDY"
    no_uid.PatientID = "PID-0001"
    _, statuses = _get(port, no_uid)
    assert statuses[-1].Status == 0xA900, "a retrieve names its instances"
    wildcard = Dataset()
    wildcard.QueryRetrieveLevel = "STUDY"
    wildcard.StudyInstanceUID = "1.2.*"
    _, statuses = _get(port, wildcard)
    assert statuses[-1].Status == 0xA900


def test_nothing_sendable_fails_every_sub_operation(port: int, stored_study: dict[str, Any]) -> None:
    """A peer that offered to store CT images only cannot be sent our MR instances: each is a
    failed sub-operation (0xA702: none sent); offering MR, it gets all three, RLE decoded."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = stored_study["uid"]
    received, statuses = _get(port, identifier, storage=("1.2.840.10008.5.1.4.1.1.2",))  # CT only
    assert received == {}
    final = statuses[-1]
    assert final.Status == 0xA702 and final.NumberOfFailedSuboperations == 3
    received, statuses = _get(port, identifier)
    assert len(received) == 3 and statuses[-1].Status == 0x0000


def test_an_unknown_study_is_a_plain_success(port: int) -> None:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = new_uid()
    received, statuses = _get(port, identifier)
    assert received == {} and statuses[-1].Status == 0x0000


def _get(
    port: int,
    identifier: Dataset,
    storage: tuple[str, ...] = (str(MRImageStorage),),
    syntaxes: tuple[str, ...] = (str(ExplicitVRLittleEndian),),
) -> tuple[dict[str, tuple[str, bytes]], list[Dataset]]:
    """pynetdicom's C-GET, keeping what arrives: (SOP Instance UID -> (transfer syntax, pixel
    data), every status)."""
    received: dict[str, tuple[str, bytes]] = {}

    def on_store(event: Any) -> int:
        ds = event.dataset
        received[str(ds.SOPInstanceUID)] = (event.context.transfer_syntax, ds.PixelData)
        return 0x0000

    assoc = requestor(port, on_store, storage, syntaxes)
    try:
        statuses = [status for status, _ in assoc.send_c_get(identifier, STUDY_ROOT_GET)]
    finally:
        assoc.release()
    return received, statuses
