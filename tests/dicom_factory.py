"""Synthetic DICOM instances for tests and benchmarks (synthetic names, generated UIDs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

_SOP_CLASS = {"MR": MRImageStorage, "CT": CTImageStorage}


def new_uid() -> str:
    return str(generate_uid())


def make_instance(
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str | None = None,
    modality: str = "MR",
    rows: int = 64,
    columns: int = 64,
    frames: int = 1,
    patient_id: str | None = "PID-0001",
    patient_name: str = "Testperson^Alice",
    instance_number: int = 1,
    series_number: int = 1,
    **attributes: Any,
) -> Dataset:
    """One image in Explicit VR Little Endian; `attributes` set or override data elements by keyword."""
    sop_class = _SOP_CLASS.get(modality, MRImageStorage)
    sop_uid = sop_uid or new_uid()
    ds = Dataset()
    ds.preamble = b"\0" * 128  # as on a dataset read from a file: dcmwrite then writes a Part 10 file
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality = modality
    if patient_id is not None:
        ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate, ds.StudyTime = "20240305", "101500"
    ds.AccessionNumber = "ACC-0001"
    ds.StudyDescription = "Synthetic study"
    ds.SeriesNumber, ds.InstanceNumber = series_number, instance_number
    ds.SeriesDescription = f"Series {series_number}"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    pixels = (np.arange(rows * columns * frames, dtype=np.uint32) % 4096).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_study(
    directory: Path,
    *,
    series: int = 2,
    per_series: int = 3,
    modality: str = "MR",
    study_uid: str | None = None,
    **attributes: Any,
) -> tuple[str, list[Path]]:
    """A study of `series` x `per_series` instances written under `directory`."""
    study_uid = study_uid or new_uid()
    paths = []
    for s in range(1, series + 1):
        series_uid = new_uid()
        for i in range(1, per_series + 1):
            ds = make_instance(
                study_uid=study_uid,
                series_uid=series_uid,
                modality=modality,
                series_number=s,
                instance_number=i,
                **attributes,
            )
            paths.append(write(ds, directory / f"s{s}_i{i}.dcm"))
    return study_uid, paths


def meta_names_another_instance(data: bytes, sop_uid: str) -> bytes:
    """The Part 10 bytes with another UID of the same length in (0002,0003) (the first occurrence:
    the file meta comes first); pydicom's writer would put the data set's UID back."""
    other = sop_uid[:-1] + ("2" if sop_uid.endswith("1") else "1")
    changed = data.replace(sop_uid.encode(), other.encode(), 1)
    assert changed.count(sop_uid.encode()) == 1 and changed.index(other.encode()) < 256
    return changed
