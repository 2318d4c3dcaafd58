"""QIDO-RS parameters -> a C-FIND plan, and matches in the DICOM JSON Model, pure."""

from __future__ import annotations

import pytest

from mapping.dicom.qido import BadQidoQuery, json_match, qido_search
from mapping.dicom.query_keys import find_plan, response_identifier

RECORD = {
    "study_uid": "1.2.3",
    "patient_name": "Yamada^Tarou=山田^太郎=やまだ^たろう",
    "patient_id": "PID-1",
    "study_date": "20240305",
    "study_time": "",
    "modalities": "CT\\SR",
    "study_series": 2,
    "study_instances": 11,
    "accession": "",
    "referring_physician": "Doe^John^^^",
}


def test_json_is_what_pydicom_writes_of_the_c_find_identifier() -> None:
    search = qido_search("STUDY", [("includefield", "all")], named={})
    plan = find_plan("study", search.level, search.keys)
    ours = json_match(plan, RECORD, "http://x/studies/1.2.3")
    ds = response_identifier(plan, RECORD, stored_charset="", retrieve_ae=None)
    del ds.SpecificCharacterSet, ds.QueryRetrieveLevel
    ds.RetrieveURL = "http://x/studies/1.2.3"
    assert ours == dict(sorted(ds.to_json_dict().items()))
    assert ours["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]
    assert ours["00080090"]["Value"] == [{"Alphabetic": "Doe^John"}]
    assert ours["00201208"]["Value"] == [11] and ours["00080061"]["Value"] == ["CT", "SR"]
    assert ours["00080030"] == {"vr": "TM"}


def test_defaults_named_levels_and_lists() -> None:
    search = qido_search("IMAGE", [("SOPClassUID", "1.2,1.3")], named={"StudyInstanceUID": "1.2.3"})
    keywords = [k for k, _ in search.keys]
    assert "PatientName" not in keywords, "the study is named by the URL: its attributes are not returned"
    assert {"SeriesInstanceUID", "SOPInstanceUID", "NumberOfFrames"} <= set(keywords)
    assert dict(search.keys)["SOPClassUID"] == ("1.2", "1.3")
    assert dict(search.keys)["StudyInstanceUID"] == ("1.2.3",)
    assert (search.limit, search.offset) == (1000, 0)


@pytest.mark.parametrize(
    "pairs",
    [
        [("limit", "x")],
        [("offset", "-3")],
        [("fuzzymatching", "1")],
        [("0010001", "x")],
        [("PatientID", "a"), ("PatientID", "b")],
        [("ReferencedStudySequence.ReferencedSOPInstanceUID", "1")],
    ],
)
def test_refusals(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(BadQidoQuery):
        qido_search("STUDY", pairs, named={})
