"""The SR content tree reader (mapping/dicom/sr/content.py): typed, exact, tolerant."""

from __future__ import annotations

from decimal import Decimal
from io import BytesIO

from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from mapping.dicom.sr.content import MAX_DEPTH, Code, ContentItem, decimal_of, read_document
from tests.mapping.dicom.sr.factories import COMPREHENSIVE_SR, container, content, num, sr_document

NAME = ("1", "99TEST", "Thing")


def through_a_file(ds: Dataset) -> Dataset:
    """Write and read back: values then come from bytes, as from a modality."""
    ds.file_meta = Dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return dcmread(buffer)


def test_pydicom_sample_sr_reads_as_a_typed_tree() -> None:
    doc = read_document(dcmread(get_testdata_file("test-SR.dcm")))
    assert doc.title == Code("TEST", "1111", "Diagnosis")
    assert (doc.completion, doc.verification) == ("COMPLETE", "VERIFIED")
    assert doc.observers == ("Riesmeier^Jörg", "Observer^Verifying")
    first = doc.root.children[0]
    assert (first.position, first.relationship, first.value_type, first.text) == (
        "1.1",
        "HAS OBS CONTEXT",
        "UIDREF",
        "1.2.3.4.5",
    )
    nums = [i for i in doc.walk() if i.value_type == "NUM"]
    assert nums and nums[0].measured is not None
    assert nums[0].measured.text == "3"
    assert nums[0].measured.unit == Code("99_OFFIS_DCMTK", "cm", "Length Unit")
    assert doc.warnings == []


def test_numeric_values_are_kept_as_written() -> None:
    values = ["12.50", "1.6e-005", "-0.000", "+7", "120.0"]
    ds = sr_document(COMPREHENSIVE_SR, NAME, [num(NAME, v, ("mm", "UCUM", "mm")) for v in values])
    for read in (ds, through_a_file(ds)):
        doc = read_document(read)
        got = [i.measured for i in doc.root.children]
        assert [m.text for m in got if m] == values
        assert [m.decimal for m in got if m] == [Decimal(v) for v in values]
        assert str(got[0].decimal if got[0] else None) == "12.50"


def test_a_value_pydicom_cannot_convert_is_kept_as_text_and_warned() -> None:
    item = num(NAME, "1", ("mm", "UCUM", "mm"))
    measured = item.MeasuredValueSequence[0]
    del measured.NumericValue
    tag = Tag(0x0040, 0xA30A)
    measured[tag] = RawDataElement(tag, "DS", 4, b"1,5 ", 0, False, True)
    doc = read_document(sr_document(COMPREHENSIVE_SR, NAME, [item]))
    m = doc.root.children[0].measured
    assert m is not None and (m.text, m.decimal) == ("1,5", None)
    assert doc.warnings == ["1.1: Numeric Value is not a number"]


def test_missing_pieces_are_skipped_with_a_warning() -> None:
    no_value = content("NUM", "CONTAINS", NAME)  # no Measured Value Sequence
    no_type = Dataset()
    no_type.RelationshipType = "CONTAINS"
    no_code = content("CODE", "CONTAINS", NAME)
    doc = read_document(sr_document(COMPREHENSIVE_SR, NAME, [no_value, no_type, no_code]))
    kinds = [(i.position, i.value_type, i.measured) for i in doc.root.children]
    assert kinds == [("1.1", "NUM", None), ("1.3", "CODE", None)]
    assert doc.warnings == [
        "1.1: NUM without a Measured Value",
        "1.2: no Value Type, skipped",
        "1.3: CODE without a Concept Code",
    ]


def test_by_reference_items_resolve_and_cycles_do_not() -> None:
    target = content("TEXT", "CONTAINS", NAME, TextValue="seen")

    def ref(*path: int) -> Dataset:
        item = Dataset()
        item.RelationshipType = "INFERRED FROM"
        item.ReferencedContentItemIdentifier = list(path)
        return item

    group = container(NAME, [ref(1, 1), ref(1, 2), ref(1, 2, 9), ref(1, 9)])
    doc = read_document(sr_document(COMPREHENSIVE_SR, NAME, [target, group]))
    refs = doc.root.children[1].children
    assert [r.reference for r in refs] == ["1.1", "1.2", "1.2.9", "1.9"]
    resolved = [doc.resolve(r) for r in refs]
    assert resolved[0] is doc.root.children[0]
    assert resolved[1:] == [None, None, None]
    assert doc.warnings == [
        "1.2.2: by-reference to its own ancestor 1.2",
        "1.2.3: by-reference to missing item 1.2.9",
        "1.2.4: by-reference to missing item 1.9",
    ]


def test_nesting_is_bounded() -> None:
    item = content("TEXT", "CONTAINS", NAME, TextValue="deep")
    for _ in range(MAX_DEPTH + 10):
        item = container(NAME, [item])
    doc = read_document(sr_document(COMPREHENSIVE_SR, NAME, [item]))
    depth, node = 0, doc.root
    while node.children:
        node, depth = node.children[0], depth + 1
    assert depth == MAX_DEPTH
    assert len(doc.warnings) == 1 and "nested deeper" in doc.warnings[0]


def test_image_references_and_coordinates() -> None:
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.3.4"
    ref.ReferencedFrameNumber = [2, 3]
    ref.ReferencedSegmentNumber = 1
    image = content("IMAGE", "CONTAINS", NAME, ReferencedSOPSequence=[ref])
    scoord = content("SCOORD3D", "CONTAINS", NAME, GraphicType="POINT", GraphicData=[1.5, 2.0, 3.25])
    scoord.ReferencedFrameOfReferenceUID = "1.2.3.5"
    doc = read_document(sr_document(COMPREHENSIVE_SR, NAME, [image, scoord]))
    img, point = doc.root.children
    assert img.images[0].frames == (2, 3) and img.images[0].segments == (1,)
    assert point.coords is not None
    assert (point.coords.graphic_type, point.coords.points, point.coords.frame_of_reference) == (
        "POINT",
        (1.5, 2.0, 3.25),
        "1.2.3.5",
    )


def test_decimal_of_accepts_ds_and_nothing_else() -> None:
    assert decimal_of("1.6e-005") == Decimal("0.000016")
    assert decimal_of(" 3") is None  # callers strip; the function takes DS characters only
    assert [decimal_of(v) for v in ("", "abc", "1,5", "NaN", "inf", "1e")] == [None] * 6


def test_child_lookup_helpers() -> None:
    item = ContentItem(
        "1", "", "CONTAINER", None, children=(ContentItem("1.1", "CONTAINS", "TEXT", Code("DCM", "1")),)
    )
    assert item.child("1", value_type="TEXT") is item.children[0]
    assert item.child("1", value_type="NUM") is None
