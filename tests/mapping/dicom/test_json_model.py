"""The DICOM JSON model of metadata (PS3.18 F.2): bulk values by URI, never read."""

from __future__ import annotations

import io

from pydicom import dcmread
from pydicom.filewriter import dcmwrite
from pydicom.uid import ImplicitVRLittleEndian

from mapping.dicom.json_model import dicom_json, element_header, pixel_data_tag
from tests.dicom_factory import make_instance, new_uid


def read_stopped(data: bytes) -> tuple[dict[str, object], str]:
    f = io.BytesIO(data)
    ds = dcmread(f, defer_size=1024, stop_before_pixels=True)
    ts = ds.file_meta.TransferSyntaxUID
    tag = pixel_data_tag(f.read(4), little_endian=ts.is_little_endian)
    return dicom_json(ds, lambda t: f"bulk/{t:08X}", ts, pixel_data=tag), ts


def part10(overlay: bytes, **attributes: object) -> bytes:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), **attributes)
    ds.add_new(0x60003000, "OB", overlay)
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def test_names_are_objects_and_bulk_values_uris() -> None:
    body, ts = read_stopped(
        part10(b"\1" * 4096, SpecificCharacterSet="ISO_IR 192", PatientName="Yamada^Tarou=山田^太郎")
    )
    assert body["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}],
    }
    assert body["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulk/7FE00010"}
    assert body["60003000"] == {"vr": "OB", "BulkDataURI": "bulk/60003000"}  # deferred: never read
    assert body["00020010"] == {"vr": "UI", "Value": [ts]}
    assert list(body) == sorted(body)


def test_small_binary_values_are_inline_and_implicit_vr_pixel_data_is_ow() -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=4, columns=4)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.add_new(0x60003000, "OB", b"\1\2")
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    body, _ = read_stopped(out.getvalue())
    assert body["60003000"]["InlineBinary"] == "AQI="  # type: ignore[index]
    assert body["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulk/7FE00010"}


def test_element_headers() -> None:
    explicit_long = bytes.fromhex("e07f10004f420000ffffffff")
    assert element_header(explicit_long, implicit_vr=False, little_endian=True) == (12, 0xFFFFFFFF)
    implicit = bytes.fromhex("e07f100000200000")
    assert element_header(implicit, implicit_vr=True, little_endian=True) == (8, 8192)
    short = bytes.fromhex("0800100055490400")
    assert element_header(short, implicit_vr=False, little_endian=True) == (8, 4)
    assert pixel_data_tag(b"", little_endian=True) is None
