"""Reading an arriving Part 10 file: the element walk agrees with pydicom, file for file."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom.data
import pytest
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from mapping.dicom.facts import HEADER_KEYWORDS, InstanceHeader, header_from_dataset, local_issuer_system
from mapping.dicom.raw_header import RawHeader
from storage.dicom_file import Part10, read_part10
from storage.errors import Invalid
from tests.dicom_factory import make_instance, new_uid, write

_IDENTITY = {"default_system": "urn:test:pid", "issuer_system": local_issuer_system("urn:test:issuer", {})}


def _read(path: Path, *, walk: bool) -> tuple[Part10 | None, InstanceHeader | str]:
    """The file as ingest reads it: the facts, or the refusal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings about the odder test files
        try:
            part10 = read_part10(path, walk=walk)
        except Invalid as exc:
            return None, str(exc)
        return part10, header_from_dataset(part10.header, **_IDENTITY)


def _agree(path: Path) -> bool:
    """True when the walk read `path` (False when it left it to pydicom); fails when they differ."""
    walked, facts = _read(path, walk=True)
    parsed, reference = _read(path, walk=False)
    assert facts == reference, path.name
    if walked is None or parsed is None:
        return False
    assert (walked.size, walked.sha256, walked.meta) == (parsed.size, parsed.sha256, parsed.meta)
    return isinstance(walked.header, RawHeader)


def test_every_bundled_pydicom_file_reads_the_same_walked_or_not() -> None:
    """pydicom's own test files: every transfer syntax it bundles, character sets (Latin, Cyrillic,
    Greek, Hebrew, Arabic, Japanese ISO 2022 with kanji, Korean, Chinese), sequences of defined and
    undefined length, truncated and malformed files."""
    bundled = Path(pydicom.data.__file__).parent  # what pydicom ships; never a download
    files = sorted((bundled / "test_files").rglob("*.dcm")) + sorted(
        (bundled / "charset_files").glob("*.dcm")
    )
    walked = [f.name for f in files if _agree(f)]
    assert len(files) > 80
    assert len(walked) > len(files) // 2  # the walk is the common case, not a corner
    assert "chrH31.dcm" in walked and "chrX1.dcm" in walked  # kanji and kana; UTF-8 with ISO 2022


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_sequences_issuers_and_codes_of_undefined_length(tmp_path: Path, syntax: str) -> None:
    ds = make_instance(
        study_uid=new_uid(),
        series_uid=new_uid(),
        patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう",
        SpecificCharacterSet=["", "ISO 2022 IR 87"],
        IssuerOfPatientID="HOSP",
        IssuerOfPatientIDQualifiersSequence=Sequence([Dataset()]),
    )
    qualifier = ds.IssuerOfPatientIDQualifiersSequence[0]
    qualifier.UniversalEntityID, qualifier.UniversalEntityIDType = "1.2.3.4", "ISO"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CTHEAD", "LN", "CT Kopf"
    ds.ProcedureCodeSequence = Sequence([code])
    ds.ProcedureCodeSequence.is_undefined_length = True
    ds.ReferencedStudySequence = Sequence([Dataset()])  # not read: walked past
    ds.ReferencedStudySequence.is_undefined_length = True
    ds.ReferencedStudySequence[0].is_undefined_length_sequence_item = True
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "x.dcm"
    write(ds, path)
    assert _agree(path)
    _, facts = _read(path, walk=True)
    assert isinstance(facts, InstanceHeader)
    assert facts.patient.id_system == "urn:oid:1.2.3.4"
    assert facts.patient.name == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert [c.code for c in facts.study.procedure_codes] == ["CTHEAD"]


def test_a_big_instance_is_walked_from_its_first_mebibyte(tmp_path: Path) -> None:
    """Native pixel data running to the end of a 2 MiB file: the head is enough."""
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid(), rows=1024, columns=1024)
    path = tmp_path / "big.dcm"
    write(ds, path)
    assert path.stat().st_size > 2 << 20
    assert _agree(path)


def test_encapsulated_pixel_data_past_the_head_is_left_to_pydicom(tmp_path: Path) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    ds.PixelData = encapsulate([b"\x01" * (600 << 10), b"\x02" * (600 << 10)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    path = tmp_path / "rle.dcm"
    write(ds, path)
    assert not _agree(path)


@pytest.mark.parametrize("cut", [1, 7, 200, 4000])
def test_a_cut_file_is_refused_as_pydicom_refuses_it(tmp_path: Path, cut: int) -> None:
    ds = make_instance(study_uid=new_uid(), series_uid=new_uid())
    path = tmp_path / "cut.dcm"
    write(ds, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    assert _read(path, walk=True)[1] == "the DICOM file ends before its last element"
    assert not _agree(path)


def test_the_header_keywords_are_all_the_facts_read(tmp_path: Path) -> None:
    """`RawHeader` answers only `HEADER_KEYWORDS`: a fact read from any other top-level attribute
    would fail here, not go silently missing from the index."""
    asked: list[str] = []

    class Recording(Dataset):
        def get(self, key: object, default: object = None) -> object:
            asked.append(str(key))
            return super().get(key, default)  # type: ignore[call-overload]

    ds = Recording(make_instance(study_uid=new_uid(), series_uid=new_uid()))
    header_from_dataset(ds, **_IDENTITY)
    assert set(asked) <= set(HEADER_KEYWORDS)
