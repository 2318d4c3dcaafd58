"""Command sets by hand (`dicom_bridge.dimse_command`) against pynetdicom's own encoding."""

from __future__ import annotations

from io import BytesIO

import pytest
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import decode

from dicom_bridge.dimse_command import C_STORE_RSP, Malformed, read_command, response


def test_a_c_store_request_as_pynetdicom_encodes_it() -> None:
    req = C_STORE()
    req.MessageID, req.Priority = 42, 0
    req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.5"
    req.MoveOriginatorApplicationEntityTitle, req.MoveOriginatorMessageID = "MOVER", 7
    req.DataSet = BytesIO(b"\x08\x00\x16\x00")
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    command = next(iter(msg.encode_msg(1, 0))).presentation_data_value_list[0][1][1:]  # after the header byte
    read = read_command(command)
    assert (read.field, read.message_id, read.has_data_set) == (0x0001, 42, True)
    assert (read.affected_sop_class_uid, read.affected_sop_instance_uid) == req_uids(req)


def req_uids(req: C_STORE) -> tuple[str, str]:
    return str(req.AffectedSOPClassUID), str(req.AffectedSOPInstanceUID)


@pytest.mark.parametrize("comment", [None, "odd", "x" * 80])
def test_a_response_pydicom_reads(comment: str | None) -> None:
    encoded = response(
        C_STORE_RSP,
        42,
        0xC000,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        sop_instance_uid="1.2.3",
        error_comment=comment,
    )
    ds = decode(BytesIO(encoded), True, True)
    assert ds.CommandGroupLength == len(encoded) - 12
    assert (ds.CommandField, ds.MessageIDBeingRespondedTo, ds.CommandDataSetType, ds.Status) == (
        0x8001,
        42,
        0x0101,
        0xC000,
    )
    assert (ds.AffectedSOPClassUID, ds.AffectedSOPInstanceUID) == ("1.2.840.10008.5.1.4.1.1.4", "1.2.3")
    assert ds.get("ErrorComment") == (comment[:64] if comment else None)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x01",
        b"\x08\x00\x00\x01\x02\x00\x00\x00\x01\x00",
        b"\x00\x00\x00\x01\x02\x00\x00\x00\x01",
    ],
)
def test_what_is_no_command_set(data: bytes) -> None:
    with pytest.raises(Malformed):
        read_command(data)
