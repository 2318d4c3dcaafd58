"""`sub_operations.sending`: the one choice of context and transfer syntax for every C-STORE
sub-operation (C-GET on both association paths, C-MOVE); the paths themselves are checked with
real peers in test_fast_get, test_get_scp and test_move_scp."""

from __future__ import annotations

from typing import Any

from dicom_bridge.sub_operations import Sending, sending
from mapping.dicom.transcode import Way

MR, CT = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT, IMPLICIT, BIG = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
RLE, JLS, J2K, BASELINE = (
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.50",
)


def record(stored: str, sop_class: str = MR) -> Any:
    return {"sop_class_uid": sop_class, "transfer_syntax": stored}


def test_as_stored_then_uncompressed_then_lossless() -> None:
    contexts = [(1, MR, J2K), (3, MR, IMPLICIT), (5, MR, RLE), (7, CT, RLE)]
    assert sending(record(RLE), contexts) == Sending(5, RLE, Way.AS_STORED)
    assert sending(record(JLS), contexts) == Sending(3, IMPLICIT, Way.DECODE)
    assert sending(record(JLS), contexts[:1]) == Sending(1, J2K, Way.ENCODE)
    assert sending(record(EXPLICIT, CT), contexts) == Sending(7, RLE, Way.ENCODE)


def test_the_requestors_order_among_equals() -> None:
    contexts = [(9, MR, EXPLICIT), (3, MR, IMPLICIT), (5, MR, JLS), (1, MR, RLE)]
    assert sending(record(BASELINE), contexts) == Sending(3, IMPLICIT, Way.DECODE)
    assert sending(record(BASELINE), contexts[2:]) == Sending(1, RLE, Way.ENCODE)


def test_no_way() -> None:
    assert sending(record(EXPLICIT), [(1, CT, EXPLICIT)]) is None  # not for this SOP class
    assert sending(record(EXPLICIT), [(1, MR, BIG)]) is None  # big endian only as stored
    assert sending(record(EXPLICIT), [(1, MR, BASELINE)]) is None  # never lossy
    assert sending(record("1.2.840.10008.1.2.4.100"), [(1, MR, EXPLICIT)]) is None  # no decoder
    assert sending(record(BASELINE), [(1, MR, BASELINE)]) == Sending(1, BASELINE, Way.AS_STORED)
