"""Peeking at the File Meta Information of a Part 10 file from its first bytes (PS3.10 7.1)."""

from __future__ import annotations

import io

import pytest
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite, write_file_meta_info
from pynetdicom.dsutils import create_file_meta

from mapping.dicom.part10 import file_meta_header, peek_file_meta
from mapping.dicom.uid import valid_uid
from tests.dicom_factory import make_instance, new_uid


def part10(**attrs: object) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(
        buffer, make_instance(study_uid=new_uid(), series_uid=new_uid(), **attrs), enforce_file_format=True
    )
    return buffer.getvalue()


def test_the_file_meta_names_class_instance_syntax_and_where_the_data_set_starts() -> None:
    data = part10()
    meta = peek_file_meta(data[: 1 << 16])
    assert meta.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert meta.sop_class_uid and valid_uid(meta.sop_class_uid)
    assert meta.sop_instance_uid and valid_uid(meta.sop_instance_uid)
    assert data[meta.dataset_offset : meta.dataset_offset + 2] == b"\x08\x00"  # group 0008 follows


@pytest.mark.parametrize("head", [b"", b"\0" * 128 + b"DICX", b"\0" * 131])
def test_no_dicm_prefix_is_no_part10_file(head: bytes) -> None:
    with pytest.raises(InvalidDicomError):
        peek_file_meta(head)


def test_a_meta_group_cut_short_is_refused() -> None:
    data = part10()
    with pytest.raises(InvalidDicomError):
        peek_file_meta(data[:150])


@pytest.mark.parametrize(
    ("uid", "valid"),
    [
        ("1.2.840.10008.1.2", True),
        ("1." + "2" * 62, True),
        ("1." + "2" * 63, False),
        ("1..2", False),
        ("", False),
        ("1.2a", False),
    ],
)
def test_valid_uid(uid: str, valid: bool) -> None:
    assert valid_uid(uid) is valid


@pytest.mark.parametrize("version", ["PYNETDICOM_300", "ODD"])
def test_file_meta_header_is_what_pydicom_writes_for_pynetdicom(version: str) -> None:
    """The fast C-STORE path's header equals the one pynetdicom's received files had."""
    uids = {"sop_class_uid": "1.2.840.10008.5.1.4.1.1.4", "sop_instance_uid": new_uid()}
    expected = io.BytesIO()
    expected.write(b"\0" * 128 + b"DICM")
    meta = create_file_meta(
        **uids,
        transfer_syntax="1.2.840.10008.1.2.4.50",
        implementation_uid="1.2.3.4",
        implementation_version=version,
    )
    write_file_meta_info(expected, meta)
    mine = file_meta_header(
        **uids, transfer_syntax_uid="1.2.840.10008.1.2.4.50", implementation_uid="1.2.3.4", version=version
    )
    assert mine == expected.getvalue()
    assert peek_file_meta(mine).dataset_offset == len(mine)
