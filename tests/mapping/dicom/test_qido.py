"""QIDO-RS parameters -> a C-FIND plan, and matches in the DICOM JSON Model, pure."""

from __future__ import annotations

import pytest

from mapping.dicom.qido import BadQidoQuery, qido_search


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
