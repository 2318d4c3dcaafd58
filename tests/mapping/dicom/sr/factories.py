"""SR documents for the SR mapping tests: TID 1500 made with highdicom, dose SRs built item by
item with pydicom (the way vendors' RDSRs are: units spelled as they spell them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import highdicom as hd
import numpy as np
from pydicom import Dataset, examples
from pydicom.dataelem import RawDataElement
from pydicom.sr.codedict import codes
from pydicom.tag import Tag
from pydicom.uid import generate_uid

CT = examples.ct
STUDY_UID = CT.StudyInstanceUID
X_RAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
NUMERIC_VALUE = Tag(0x0040, 0xA30A)


def tid1500(
    *, sop_uid: str = "1.2.826.0.1.3680043.10.1.1500", verified: bool = True, final: bool = True
) -> Dataset:
    """A measurement report on pydicom's CT example: one planar ROI group (tracking id, finding,
    finding site with laterality, region on the image) with mean, max and SD of attenuation and
    an area, and one group without tracking UID holding a length on an image frame."""
    source = hd.sr.SourceImageForRegion(CT.SOPClassUID, CT.SOPInstanceUID)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[10.0, 10.0], [20.0, 10.0], [20.0, 20.0], [10.0, 10.0]]),
        source_image=source,
    )
    site = hd.sr.FindingSite(codes.SCT.Lung, laterality=codes.SCT.Right)
    hu = hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")
    attenuation = codes.DCM.AttenuationCoefficient  # 112031
    stats = [
        hd.sr.Measurement(name=attenuation, value=42.5, unit=hu, derivation=codes.SCT.Mean),
        hd.sr.Measurement(name=attenuation, value=120.0, unit=hu, derivation=codes.SCT.Maximum),
        hd.sr.Measurement(name=attenuation, value=13.25, unit=hu, derivation=codes.SCT.StandardDeviation),
        hd.sr.Measurement(
            name=codes.SCT.Area,
            value=1.625,
            unit=hd.sr.CodedConcept("cm2", "UCUM", "square centimeter"),
            properties=hd.sr.MeasurementProperties(normality=codes.SCT.Abnormal),
        ),
    ]
    planar = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid="1.2.826.0.1.3680043.10.1.77", identifier="Nodule 1"
        ),
        referenced_region=region,
        finding_type=codes.SCT.Nodule,
        finding_sites=[site],
        measurements=stats,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                hd.sr.CodedConcept("RID50", "RADLEX", "Conspicuity"), codes.SCT.Abnormal
            )
        ],
    )
    length = hd.sr.Measurement(
        name=codes.SCT.Length,
        value=7.5,
        unit=codes.UCUM.Millimeter,
        referenced_images=[hd.sr.SourceImageForMeasurement(CT.SOPClassUID, CT.SOPInstanceUID, [1])],
    )
    plain = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid="1.2.826.0.1.3680043.10.1.78", identifier="Lesion 2"
        ),
        measurements=[length],
        finding_type=codes.SCT.Lesion,
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Reader^A"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[planar, plain],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[CT],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=99,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="Test",
        is_complete=True,
        is_final=final,
        is_verified=verified,
        verifying_observer_name="Verifier^V" if verified else None,
        verifying_organization="Org" if verified else None,
    )


# ---- item by item, as vendors write them


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def content(value_type: str, relationship: str, name: tuple[str, str, str] | None, **values: Any) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    if name:
        item.ConceptNameCodeSequence = [code_item(*name)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def num(name: tuple[str, str, str], value: str, unit: tuple[str, str, str] | None, **extra: Any) -> Dataset:
    measured = Dataset()
    # raw bytes, as read from a file: pydicom converts them only when asked (malformed ones too)
    raw = value.encode("ascii") + (b" " if len(value) % 2 else b"")
    measured[NUMERIC_VALUE] = RawDataElement(NUMERIC_VALUE, "DS", len(raw), raw, 0, False, True)
    if unit:
        measured.MeasurementUnitsCodeSequence = [code_item(*unit)]
    return content("NUM", "CONTAINS", name, MeasuredValueSequence=[measured], **extra)


def container(
    name: tuple[str, str, str], children: Iterable[Dataset], relationship: str = "CONTAINS"
) -> Dataset:
    return content(
        "CONTAINER", relationship, name, ContinuityOfContent="SEPARATE", ContentSequence=list(children)
    )


def sr_document(
    sop_class: str,
    title: tuple[str, str, str],
    children: Iterable[Dataset],
    *,
    template: str = "",
    sop_uid: str | None = None,
    completion: str = "COMPLETE",
    verification: str = "UNVERIFIED",
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = STUDY_UID
    ds.Modality = "SR"
    ds.ContentDate, ds.ContentTime = "20261201", "101500"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [code_item(*title)]
    ds.ContinuityOfContent = "SEPARATE"
    if template:
        tpl = Dataset()
        tpl.MappingResource, tpl.TemplateIdentifier = "DCMR", template
        ds.ContentTemplateSequence = [tpl]
    ds.CompletionFlag, ds.VerificationFlag = completion, verification
    ds.ContentSequence = list(children)
    return ds


DOSE_TITLE = ("113701", "DCM", "X-Ray Radiation Dose Report")


def ct_dose_sr(*, dlp: str = "1234.50", dlp_unit: str = "mGy.cm", sop_uid: str | None = None) -> Dataset:
    """TID 10011 with its accumulated data (TID 10012) and two irradiation events."""
    procedure = content(
        "CODE", "HAS CONCEPT MOD", ("121058", "DCM", "Procedure reported"),
        ConceptCodeSequence=[code_item("77477000", "SCT", "Computed Tomography X-Ray")],
    )  # fmt: skip
    accumulated = container(
        ("113811", "DCM", "CT Accumulated Dose Data"),
        [
            num(("113812", "DCM", "Total Number of Irradiation Events"), "2", ("{events}", "UCUM", "events")),
            num(("113813", "DCM", "CT Dose Length Product Total"), dlp, (dlp_unit, "UCUM", dlp_unit)),
        ],
    )
    events = [
        container(
            ("113819", "DCM", "CT Acquisition"),
            [num(("113838", "DCM", "DLP"), "600.25", ("mGy.cm", "UCUM", "mGy.cm"))],
        )
        for _ in range(2)
    ]
    return sr_document(
        X_RAY_DOSE_SR, DOSE_TITLE, [procedure, accumulated, *events], template="10011", sop_uid=sop_uid
    )


def fluoro_dose_sr(*, events: int = 2, units: dict[str, tuple[str, str]] | None = None) -> Dataset:
    """TID 10001 projection X-ray with TID 10002 totals; `units` overrides (value, unit) per code."""
    values = {
        "113722": ("1.6e-005", "Gym2"),  # DAP total: a vendor's exponent and glued unit
        "113726": ("0.0000095", "Gy.m2"),
        "113727": ("6.5", "uGym2"),
        "113725": ("0.0123", "Gy"),
        "113730": ("312.5", "s"),
        "113731": ("48", "1"),
    } | (units or {})
    meanings = {
        "113722": "Dose Area Product Total",
        "113726": "Fluoro Dose Area Product Total",
        "113727": "Acquisition Dose Area Product Total",
        "113725": "Dose (RP) Total",
        "113730": "Total Fluoro Time",
        "113731": "Total Number of Radiographic Frames",
    }
    totals = [
        num((code, "DCM", meanings[code]), value, (unit, "UCUM", unit))
        for code, (value, unit) in values.items()
    ]
    plane = content(
        "CODE", "HAS CONCEPT MOD", ("113764", "DCM", "Acquisition Plane"),
        ConceptCodeSequence=[code_item("113622", "DCM", "Single Plane")],
    )  # fmt: skip
    procedure = content(
        "CODE", "HAS CONCEPT MOD", ("121058", "DCM", "Procedure reported"),
        ConceptCodeSequence=[code_item("113704", "DCM", "Projection X-Ray")],
    )  # fmt: skip
    accumulated = container(("113702", "DCM", "Accumulated X-Ray Dose Data"), [plane, *totals])
    event_items = [_fluoro_event(i) for i in range(events)]
    return sr_document(X_RAY_DOSE_SR, DOSE_TITLE, [procedure, accumulated, *event_items], template="10001")


def _fluoro_event(i: int) -> Dataset:
    return container(
        ("113706", "DCM", "Irradiation Event X-Ray Data"),
        [
            content(
                "CODE", "HAS CONCEPT MOD", ("113764", "DCM", "Acquisition Plane"),
                ConceptCodeSequence=[code_item("113622", "DCM", "Single Plane")],
            ),
            content("UIDREF", "CONTAINS", ("113769", "DCM", "Irradiation Event UID"),
                    UID=f"1.2.826.0.1.3680043.10.9.{i + 1}"),
            content("DATETIME", "CONTAINS", ("111526", "DCM", "DateTime Started"), DateTime="20261201101500"),
            num(("122130", "DCM", "Dose Area Product"), "0.00000123", ("Gym2", "UCUM", "Gym2")),
            num(("113738", "DCM", "Dose (RP)"), "0.0001", ("Gy", "UCUM", "Gy")),
            num(("113793", "DCM", "Pulse Rate"), "7.5", ("{pulse}/s", "UCUM", "pulse/s")),
            num(("113742", "DCM", "Irradiation Duration"), "0.5", ("s", "UCUM", "s")),
            num(("113733", "DCM", "KVP"), "80", ("kV", "UCUM", "kV")),
        ],
    )  # fmt: skip


def mammo_dose_sr() -> Dataset:
    """TID 10001 for mammography: accumulated average glandular dose per breast (TID 10005)."""

    def agd(value: str, side: tuple[str, str, str]) -> Dataset:
        laterality = content(
            "CODE",
            "HAS CONCEPT MOD",
            ("272741003", "SCT", "Laterality"),
            ConceptCodeSequence=[code_item(*side)],
        )
        return num(("111637", "DCM", "Accumulated Average Glandular Dose"), value, ("dGy", "UCUM", "dGy"),
                   ContentSequence=[laterality])  # fmt: skip

    mammo = container(
        ("113829", "DCM", "Accumulated Mammography X-Ray Dose"),
        [agd("0.0125", ("24028007", "SCT", "Right")), agd("0.013", ("7771000", "SCT", "Left"))],
    )
    procedure = content(
        "CODE", "HAS CONCEPT MOD", ("121058", "DCM", "Procedure reported"),
        ConceptCodeSequence=[code_item("P5-40010", "SRT", "Mammography")],
    )  # fmt: skip
    accumulated = container(("113702", "DCM", "Accumulated X-Ray Dose Data"), [mammo])
    return sr_document(X_RAY_DOSE_SR, DOSE_TITLE, [procedure, accumulated], template="10001")


PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"  # odd length


def encapsulated_pdf(*, data: bytes = PDF_BYTES, with_length: bool = True) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = STUDY_UID
    ds.Modality = "DOC"
    ds.ContentDate, ds.ContentTime = "20261201", "120000"
    ds.DocumentTitle = "Outside report"
    ds.ConceptNameCodeSequence = [code_item("18748-4", "LN", "Diagnostic imaging study")]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
    if with_length:
        ds.EncapsulatedDocumentLength = len(data)
    return ds


def tid2000(
    *, completion: str = "COMPLETE", verification: str = "VERIFIED", sop_class: str = COMPREHENSIVE_SR
) -> Dataset:
    """A basic diagnostic imaging report: findings (text, a code, a number) and impressions."""
    findings = container(
        ("121070", "DCM", "Findings"),
        [
            content("TEXT", "CONTAINS", ("121071", "DCM", "Finding"),
                    TextValue="Small nodule in the right upper lobe."),
            content(
                "CODE", "CONTAINS", ("121071", "DCM", "Finding"),
                ConceptCodeSequence=[code_item("27925004", "SCT", "Nodule")],
            ),
            num(("G-D7FE", "SRT", "Length"), "4.50", ("mm", "UCUM", "millimeter")),
        ],
    )  # fmt: skip
    impressions = container(
        ("121072", "DCM", "Impressions"),
        [
            content(
                "TEXT", "CONTAINS", ("121073", "DCM", "Impression"), TextValue="Follow-up CT in 12 months."
            )
        ],
    )
    observer = content(
        "PNAME", "HAS OBS CONTEXT", ("121008", "DCM", "Person Observer Name"), PersonName="Reader^Rita"
    )
    ds = sr_document(
        sop_class,
        ("18748-4", "LN", "Diagnostic imaging study"),
        [observer, findings, impressions],
        template="2000",
        completion=completion,
        verification=verification,
    )
    if verification == "VERIFIED":
        verifier = Dataset()
        verifier.VerifyingObserverName = "Verifier^Vera"
        verifier.VerificationDateTime = "20261201113000"
        verifier.VerifyingOrganization = "Org"
        ds.VerifyingObserverSequence = [verifier]
    return ds
