"""QIDO-RS matches as DICOM JSON text: what pydicom writes of the C-FIND response identifier."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from mapping.dicom.qido import qido_search
from mapping.dicom.qido_json import match_json, matches_json
from mapping.dicom.query_keys import FindPlan, Level, find_plan, response_identifier

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
AWKWARD = {
    **RECORD,
    "patient_name": ' Smith ^ "Q" Jr =^Ideo^^',
    "patient_id": 'quote " solidus / tab \t nul \x00 é',
    "study_description": "</script>\u2028",
    "referring_physician": "Ideo^Graphic",
    "series_uid": "1.2.3.4",
    "modality": "MR",
    "series_number": "0007",
    "series_description": None,
    "series_instances": 0,
    "sop_uid": "1.2.3.4.5",
    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.4",
    "instance_number": 12,
    "rows": 512,
    "columns": "256",
    "number_of_frames": None,
}


def _plan(level: Level, pairs: list[tuple[str, str]]) -> FindPlan:
    search = qido_search(level, pairs, named={})
    return find_plan("study", search.level, search.keys)


def _pydicom(plan: FindPlan, record: Mapping[str, object], url: str) -> dict[str, object]:
    ds = response_identifier(plan, record, stored_charset="", retrieve_ae=None)
    del ds.SpecificCharacterSet, ds.QueryRetrieveLevel
    ds.RetrieveURL = url
    return dict(sorted(ds.to_json_dict().items()))


@pytest.mark.parametrize("record", [RECORD, AWKWARD], ids=["names", "awkward"])
@pytest.mark.parametrize(
    ("level", "pairs"),
    [
        ("STUDY", [("includefield", "all")]),
        ("STUDY", []),
        ("SERIES", [("includefield", "all")]),
        ("IMAGE", [("includefield", "all"), ("includefield", "00081190,RetrieveAETitle")]),
    ],
)
def test_the_text_is_what_pydicom_writes_of_the_c_find_identifier(
    record: Mapping[str, object], level: Level, pairs: list[tuple[str, str]]
) -> None:
    plan = _plan(level, pairs)
    text = match_json(plan, record, 'http://x/studies/1.2.3?a="b"')
    ours = json.loads(text)
    assert list(ours) == sorted(ours), "attributes in tag order"
    assert ours == _pydicom(plan, record, 'http://x/studies/1.2.3?a="b"')


def test_names_numbers_lists_and_empty_values() -> None:
    ours = json.loads(match_json(_plan("STUDY", [("includefield", "all")]), RECORD, "http://x"))
    assert ours["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]
    assert ours["00080090"]["Value"] == [{"Alphabetic": "Doe^John"}]
    assert ours["00201208"]["Value"] == [11] and ours["00080061"]["Value"] == ["CT", "SR"]
    assert ours["00080030"] == {"vr": "TM"}
    assert ours["00081190"] == {"vr": "UR", "Value": ["http://x"]}


def test_an_array_of_matches() -> None:
    plan = _plan("STUDY", [])
    assert json.loads(matches_json(plan, [])) == []
    both = json.loads(matches_json(plan, [(RECORD, "http://x/1"), (AWKWARD, "http://x/2")]))
    assert [m["00081190"]["Value"] for m in both] == [["http://x/1"], ["http://x/2"]]
    assert both[1]["00100020"]["Value"] == ['quote " solidus / tab \t nul \x00 é']


def test_a_sequence_and_a_name_without_its_first_group() -> None:
    """Empty values and groups are left out (PS3.18 F.2.2, F.2.5), where pydicom writes an empty
    `Value` array and an empty `Alphabetic`."""
    plan = _plan("STUDY", [("includefield", "ReferencedStudySequence")])
    ours = json.loads(match_json(plan, {**RECORD, "referring_physician": "=Ideo"}, "http://x"))
    assert ours["00081110"] == {"vr": "SQ"}
    assert ours["00080090"]["Value"] == [{"Ideographic": "Ideo"}]
