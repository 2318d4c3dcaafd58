"""Dose SRs -> accumulated totals, units normalised deliberately (mapping/dicom/sr/dose.py)."""

from __future__ import annotations

from mapping.dicom.sr.content import read_document
from mapping.dicom.sr.dose import dose_report
from tests.mapping.dicom.sr.factories import ct_dose_sr, fluoro_dose_sr, mammo_dose_sr


def totals(ds: object) -> dict[str, tuple[str, str, str]]:
    report = dose_report(read_document(ds))  # type: ignore[arg-type]
    return {t.code: (str(t.value), t.unit, t.note) for t in report.totals}


def test_ct_dlp_total_exactly_as_written() -> None:
    report = dose_report(read_document(ct_dose_sr()))
    assert (report.kind, report.events) == ("CT", 2)
    assert totals(ct_dose_sr())["113813"] == ("1234.50", "mGy.cm", "")


def test_a_glued_unit_is_respelled_not_rescaled() -> None:
    assert totals(ct_dose_sr(dlp="987.6", dlp_unit="mGycm"))["113813"] == (
        "987.6",
        "mGy.cm",
        "unit 'mGycm' read as mGy.cm",
    )


def test_projection_totals_with_vendor_spellings() -> None:
    got = totals(fluoro_dose_sr())
    assert got["113722"] == ("0.000016", "Gy.m2", "unit 'Gym2' read as Gy.m2")  # written 1.6e-005
    assert got["113726"] == ("0.0000095", "Gy.m2", "")
    assert got["113727"] == (
        "0.0000065",
        "Gy.m2",
        "unit 'uGym2' read as uGy.m2; 6.5 uGy.m2 converted exactly to Gy.m2",
    )
    assert got["113725"] == ("0.0123", "Gy", "")
    assert got["113730"] == ("312.5", "s", "")
    assert got["113731"] == ("48", "1", "")
    report = dose_report(read_document(fluoro_dose_sr()))
    assert report.kind == "projection" and report.procedure is not None and report.procedure.value == "113704"


def test_fluoro_time_in_minutes_converts_exactly_and_unknown_units_stay_text() -> None:
    got = totals(fluoro_dose_sr(units={"113730": ("5.25", "min"), "113725": ("12", "Rad")}))
    assert got["113730"] == ("315.00", "s", "5.25 min converted exactly to s")
    assert got["113725"] == ("12", "", "unit 'Rad' is not convertible exactly to Gy: kept as text")


def test_a_value_that_is_no_number_is_noted_not_raised() -> None:
    got = totals(fluoro_dose_sr(units={"113722": ("n/a", "Gy.m2")}))
    assert got["113722"] == ("None", "Gy.m2", "value 'n/a' is no number")


def test_mammography_glandular_dose_per_breast() -> None:
    report = dose_report(read_document(mammo_dose_sr()))
    assert report.kind == "mammography"
    got = [(str(t.value), t.unit, t.laterality.meaning if t.laterality else "") for t in report.totals]
    assert got == [("1.25", "mGy", "Right"), ("1.3", "mGy", "Left")]


def test_a_large_fluoroscopy_rdsr_counts_its_events() -> None:
    report = dose_report(read_document(fluoro_dose_sr(events=500)))
    assert report.events == 500 and len(report.totals) == 6
