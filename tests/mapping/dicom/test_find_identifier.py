"""C-FIND response identifiers written from a plan's layout are the bytes of the data set
`response_identifier` builds, as `frozen.encode` writes it, in every transfer syntax."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from mapping.dicom.find_identifier import FindIdentifiers
from mapping.dicom.frozen import decode, encode
from mapping.dicom.query_keys import KEYS, FindPlan, find_plan, response_identifier

# keywords we hold no value of, one of most VRs (some ambiguous), asked and returned empty
OTHERS = [
    "PatientWeight", "PatientAge", "ContentDate", "AcquisitionDateTime", "ReferencedSOPSequence",
    "EncapsulatedDocument", "BitsAllocated", "PixelSpacing", "SmallestImagePixelValue", "TextValue",
    "FrameIncrementPointer", "OtherPatientIDsSequence", "Allergies", "ImageComments",
    "RetrieveURL", "ReferencedFrameNumber", "PixelData", "LargestImagePixelValue",
]  # fmt: skip
SYNTAXES = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]

ASCII_RECORDS: list[dict[str, Any]] = [
    {},
    {"patient_name": "Doe^Jane^^^", "patient_id": "PID-1", "birth_date": "19700101", "sex": "F",
     "patient_studies": 2, "patient_series": 4, "patient_instances": 40, "study_uid": "1.2.3",
     "study_date": "20240101", "study_time": "101010.5", "accession": "A1", "study_id": "7",
     "study_description": "Chest", "referring_physician": "Who^Dr", "modalities": "CT\\MR",
     "sop_classes": "1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.4", "tz_offset": "+0100",
     "study_series": 2, "study_instances": 20, "series_uid": "1.2.3.4", "modality": "CT",
     "series_number": 3, "series_description": "Axial  ", "body_part": "CHEST", "laterality": "L",
     "series_date": "20240101", "series_time": "1010", "performing_physician": "A^B=C^D",
     "series_instances": 10, "sop_uid": "1.2.3.4.5", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
     "instance_number": 12, "rows": 512, "columns": 64, "number_of_frames": 1},
    {"patient_name": "^^^", "patient_id": "", "study_uid": "1.22", "modalities": "US",
     "study_instances": 0, "series_number": None, "instance_number": 2**31 - 1, "rows": 0},
    # values of odd and even lengths, at a VR's longest, and names trimmed to odd and even ones
    {"patient_name": "Doe^Jo^^=^=", "patient_id": "P" * 64, "study_uid": "1.2.345",
     "study_description": "D" * 63, "accession": "A" * 16, "modalities": "CT\\MR\\US",
     "series_uid": "1." + "9" * 62, "sop_uid": "1.2", "referring_physician": "A^B^C^D^E",
     "performing_physician": "=Yamada^Taro", "study_time": "1", "series_description": "x"},
]  # fmt: skip
OTHER_RECORDS: list[dict[str, Any]] = [
    {"patient_name": "Buc^Jérôme", "study_uid": "1.2.3", "modalities": "CT"},
    {"patient_name": "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", "study_uid": "1.2.3"},
    {"patient_id": "0042", "instance_number": "007", "series_number": 2**31, "rows": 70000},
]
CHARSETS = ["", "ISO_IR 100", "\\ISO 2022 IR 87", "ISO_IR 192"]


def plans() -> list[FindPlan]:
    every = [(k.keyword, []) for k in KEYS if k.keyword != "SOPClassesInStudy"]
    return [
        find_plan("patient", "PATIENT", [("PatientID", ["PID*"]), *every[:7]]),
        find_plan("study", "STUDY", [("StudyDate", []), ("PatientName", []), ("ModalitiesInStudy", ["CT"])]),
        find_plan("study", "STUDY", [*every, ("SOPClassesInStudy", [])]),
        find_plan("study", "SERIES", [*every, *((k, []) for k in OTHERS[:8])]),
        find_plan("study", "IMAGE", [*every, *((k, []) for k in OTHERS)]),
    ]


def pydicoms(plan: FindPlan, record: dict[str, Any], charset: str, syntax: UID, ae: str | None) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return encode(response_identifier(plan, record, stored_charset=charset, retrieve_ae=ae), syntax)


def outcome(write: Callable[..., bytes], *args: Any) -> bytes | str:
    """The bytes, or the name of the error (Rows 70000 cannot be a US, either way)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return write(*args)
    except Exception as exc:
        return type(exc).__name__


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("ae", ["FACADE", "AE7", None])
def test_every_identifier_is_the_bytes_of_its_data_set(syntax: UID, ae: str | None) -> None:
    for plan in plans():
        identifiers = FindIdentifiers(plan, retrieve_ae=ae)
        for record in ASCII_RECORDS + OTHER_RECORDS:
            for charset in CHARSETS:
                ours = outcome(identifiers.encoded, record, charset, syntax)
                theirs = outcome(pydicoms, plan, record, charset, syntax, ae)
                assert ours == theirs, (plan.level, record)


@pytest.mark.parametrize("implicit", [True, False])
def test_ascii_matches_of_the_index_keys_are_written_from_the_layout(implicit: bool) -> None:
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    for plan in plans()[:3]:
        identifiers = FindIdentifiers(plan, retrieve_ae="FACADE")
        for record in ASCII_RECORDS:
            written = identifiers.written(record, implicit=implicit)
            assert written is not None
            assert written == pydicoms(plan, record, "ISO_IR 100", syntax, "FACADE")
        assert identifiers.written(OTHER_RECORDS[0], implicit=implicit) is None  # a charset to choose


def test_ambiguous_vrs_are_written_from_the_data_set() -> None:
    identifiers = FindIdentifiers(plans()[4], retrieve_ae="FACADE")  # SmallestImagePixelValue: US or SS
    assert identifiers.written(ASCII_RECORDS[1], implicit=True) is None


def test_rows_and_columns_are_numbers() -> None:
    plan = find_plan("study", "IMAGE", [("StudyInstanceUID", ["1.2.3"]), ("Rows", []), ("Columns", [])])
    data = FindIdentifiers(plan, retrieve_ae=None).encoded(ASCII_RECORDS[1], "", ExplicitVRLittleEndian)
    ds = decode(data, ExplicitVRLittleEndian)
    assert (ds.Rows, ds.Columns) == (512, 64)
