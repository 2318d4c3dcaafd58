"""Which mapping a document takes (kind.py), text reports (text_report.py), PDF (pdf.py)."""

from __future__ import annotations

from pydicom import dcmread, examples
from pydicom.data import get_testdata_file

from mapping.dicom.sr.content import read_document
from mapping.dicom.sr.kind import sr_kind
from mapping.dicom.sr.pdf import pdf_document
from mapping.dicom.sr.text_report import text_report
from tests.mapping.dicom.sr.factories import (
    BASIC_TEXT_SR,
    COMPREHENSIVE_SR,
    DOSE_TITLE,
    PDF_BYTES,
    ct_dose_sr,
    encapsulated_pdf,
    fluoro_dose_sr,
    sr_document,
    tid1500,
    tid2000,
)


def test_kind_by_sop_class_title_and_template() -> None:
    assert sr_kind(tid1500()) == "measurement"
    assert sr_kind(ct_dose_sr()) == "dose"
    assert sr_kind(fluoro_dose_sr()) == "dose"
    # a CT scanner's dose report sent as Comprehensive SR
    assert sr_kind(sr_document(COMPREHENSIVE_SR, DOSE_TITLE, [])) == "dose"
    assert sr_kind(dcmread(get_testdata_file("test-SR.dcm"))) == "text"
    assert sr_kind(tid2000(sop_class=BASIC_TEXT_SR)) == "text"
    assert sr_kind(encapsulated_pdf()) == "pdf"
    assert sr_kind(examples.ct) is None
    key_object = sr_document("1.2.840.10008.5.1.4.1.1.88.59", ("113000", "DCM", "Of Interest"), [])
    assert sr_kind(key_object) is None


def test_tid2000_sections_conclusion_and_observers() -> None:
    report = text_report(read_document(tid2000()))
    assert report.title is not None and report.title.value == "18748-4"
    assert [s.heading.meaning if s.heading else None for s in report.sections] == ["Findings", "Impressions"]
    assert report.sections[0].lines == (
        "Small nodule in the right upper lobe.",
        "Finding: Nodule",
        "Length: 4.50 mm",
    )
    assert report.conclusion == "Follow-up CT in 12 months."
    assert report.person_observers == ("Reader^Rita",)
    assert report.verifying_observers == ("Verifier^Vera",)
    assert (report.completion, report.verification) == ("COMPLETE", "VERIFIED")
    assert report.narrative().startswith("Diagnostic imaging study\n\nFindings\nSmall nodule")


def test_pydicom_sample_sr_narrative() -> None:
    report = text_report(read_document(dcmread(get_testdata_file("test-SR.dcm"))))
    text = report.narrative()
    assert text.startswith("Diagnosis")
    assert "A mass of" in text and "Diameter: 3 cm" in text
    assert report.conclusion == ""


def test_pdf_bytes_without_padding() -> None:
    pdf = pdf_document(encapsulated_pdf())
    assert pdf.data == PDF_BYTES and pdf.title == "Outside report"
    assert pdf_document(encapsulated_pdf(with_length=False)).data == PDF_BYTES
    empty = encapsulated_pdf(data=b"")
    del empty.EncapsulatedDocument
    assert pdf_document(empty).data == b""
