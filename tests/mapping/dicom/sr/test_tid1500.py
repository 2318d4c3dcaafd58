"""TID 1500 measurement reports made with highdicom -> groups and measurements
(mapping/dicom/sr/tid1500.py)."""

from __future__ import annotations

from decimal import Decimal

from mapping.dicom.sr.content import Code, read_document
from mapping.dicom.sr.tid1500 import loose_measurements, measurement_groups
from tests.mapping.dicom.sr.factories import CT, tid1500


def test_groups_carry_tracking_finding_site_and_region() -> None:
    doc = read_document(tid1500())
    nodule, lesion = measurement_groups(doc)
    assert (nodule.template, nodule.tracking_id, nodule.tracking_uid) == (
        "1410",
        "Nodule 1",
        "1.2.826.0.1.3680043.10.1.77",
    )
    assert nodule.finding == Code("SCT", "27925004", "Nodule")
    assert nodule.sites[0].code == Code("SCT", "39607008", "Lung")
    assert nodule.sites[0].laterality == Code("SCT", "24028007", "Right")
    coords, on = nodule.regions[0]
    assert coords.graphic_type == "POLYLINE" and len(coords.points) == 8
    assert [r.sop_instance for r in on] == [CT.SOPInstanceUID]
    assert lesion.tracking_id == "Lesion 2" and lesion.template == "1501"
    assert doc.warnings == []


def test_each_derivation_is_its_own_measurement_with_its_value_as_written() -> None:
    nodule, lesion = measurement_groups(read_document(tid1500()))
    got = [
        (
            m.name.value,
            m.derivation.meaning if m.derivation else None,
            m.measured.text if m.measured else None,
        )
        for m in nodule.measurements
    ]
    assert got == [
        ("112031", "Mean", "42.5"),
        ("112031", "Maximum", "120.0"),
        ("112031", "Standard Deviation", "13.25"),
        ("42798000", None, "1.625"),
    ]
    area = nodule.measurements[3]
    assert area.measured is not None and area.measured.decimal == Decimal("1.625")
    assert [(q.relationship, q.name.meaning, q.code.meaning if q.code else "") for q in area.qualifiers] == [
        ("HAS PROPERTIES", "Normality", "Abnormal")
    ]
    assert [(e.name.meaning, e.code.meaning if e.code else "") for e in nodule.evaluations] == [
        ("Conspicuity", "Abnormal")
    ]
    (length,) = lesion.measurements
    assert length.images[0].frames == (1,)


def test_a_measurement_report_has_no_loose_measurements() -> None:
    assert loose_measurements(read_document(tid1500())) == []
