"""The element writer writes what pydicom's `write_dataset` writes, byte for byte."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom.data
import pytest
from pydicom import Dataset, dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from mapping.dicom import element_writer
from mapping.dicom.worklist import worklist_query
from tests.orders import procedure


def pydicoms(ds: Dataset, implicit: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def decoded(path: Path) -> Dataset | None:
    """The file's data set (no pixel data), every element decoded from its bytes, as the data
    sets a responder builds are; None for a file pydicom cannot read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True, force=True)
            ds.walk(lambda _ds, _elem: None)
    except Exception:
        return None
    return ds


@pytest.mark.parametrize("implicit", [True, False])
def test_every_bundled_pydicom_file_is_written_as_pydicom_writes_it(implicit: bool) -> None:
    bundled = Path(pydicom.data.__file__).parent  # what pydicom ships; never a download
    files = sorted((bundled / "test_files").rglob("*.dcm")) + sorted(
        (bundled / "charset_files").glob("*.dcm")
    )
    compared = 0
    for path in files:
        ds = decoded(path)
        if ds is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = pydicoms(ds, implicit)
        except Exception:  # noqa: S112 - an ambiguous VR in Explicit VR, a value pydicom cannot write
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert element_writer.write(ds, implicit_vr=implicit) == expected, path.name
        compared += 1
    assert compared > 60


def test_texts_numbers_and_sequences_of_defined_and_undefined_length() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^John^^Dr="
    ds.PatientID = "PID"  # odd length: padded with a space
    ds.StudyInstanceUID = "1.2.3"  # odd: padded with NUL
    ds.ModalitiesInStudy = ["CT", "MR"]
    ds.Rows, ds.Columns = 512, 511
    ds.add_new(0x00181310, "US", [0, 64, 64, 0])  # Acquisition Matrix, VM 4
    ds.add_new(0x00280106, "SS", -2)
    ds.add_new(0x00081030, "LO", None)
    ds.add_new(0x00081140, "SQ", Sequence())  # empty sequence
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.is_undefined_length_sequence_item = True
    other = Dataset()
    other.CodeValue, other.CodeMeaning = "X", "Ünïcode meaning"  # not ASCII: pydicom writes it
    ds.add_new(0x00081110, "SQ", Sequence([item, other]))
    ds[0x00081110].is_undefined_length = True
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImagePositionPatient = ["1.5", "-2", "3"]  # DS: pydicom writes it
    for implicit in (True, False):
        assert element_writer.write(ds, implicit_vr=implicit) == pydicoms(ds, implicit)


def test_a_worklist_response_is_written_as_pydicom_writes_it() -> None:
    from mapping.dicom.worklist import WorklistPatient, worklist_item

    order = procedure("W1")
    item = worklist_item(
        WorklistPatient("Test^Alice", "PID-1", "", "19800101", "F"), order, order.steps[0], "SCHEDULED"
    )
    query = worklist_query(Dataset())
    identifier = Dataset()
    identifier.PatientName = ""
    identifier.AccessionNumber = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = ""
    sps.ScheduledProcedureStepStartDate = ""
    identifier.ScheduledProcedureStepSequence = [sps]
    for response in (query.response(item), worklist_query(identifier).response(item), item):
        for implicit in (True, False):
            assert element_writer.write(response, implicit_vr=implicit) == pydicoms(response, implicit)
