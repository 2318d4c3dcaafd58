"""DICOM SR / Encapsulated PDF -> FHIR R4 Observations and DiagnosticReport
(mapping/fhir/sr_results.py and the modules it calls). Every resource produced is checked
against the fhir.resources model and the official R4 JSON schema."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from typing import Any

from pydicom import Dataset, dcmread, examples
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from mapping.fhir.sr_common import IMAGE_SELECTION
from mapping.fhir.sr_results import SrContext, map_sr, predecessor_uids, sr_resources
from tests.fhir_schema import assert_valid_r4
from tests.mapping.dicom.sr.factories import (
    COMPREHENSIVE_SR,
    CT,
    PDF_BYTES,
    code_item,
    container,
    content,
    ct_dose_sr,
    encapsulated_pdf,
    fluoro_dose_sr,
    mammo_dose_sr,
    num,
    sr_document,
    tid1500,
    tid2000,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CTX = SrContext(patient="Patient/p1", imaging_study="study-1", now=NOW, based_on=("ServiceRequest/o1",))
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def mapped(ds: Dataset, ctx: SrContext = CTX) -> list[dict[str, Any]]:
    resources = sr_resources(ds, ctx)
    for resource in resources:
        assert_valid_r4(resource)
    return resources


def by_type(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == kind]


def code_of(resource: dict[str, Any]) -> tuple[str, str]:
    coding = resource["code"]["coding"][0]
    return coding.get("system", ""), coding["code"]


def method_of(obs: dict[str, Any]) -> str | None:
    return obs["method"]["text"] if "method" in obs else None


# ---- TID 1500


def test_measurement_report_panels_members_and_exact_values() -> None:
    resources = mapped(tid1500())
    observations = by_type(resources, "Observation")
    (report,) = by_type(resources, "DiagnosticReport")
    assert resources[-1] is report
    panels = [o for o in observations if code_of(o) == (DCM, "125007")]
    assert len(panels) == 2
    nodule, lesion = panels
    assert len(lesion["hasMember"]) == 1 and lesion["identifier"][-1]["value"] == "Lesion 2"
    members = {m["reference"].removeprefix("Observation/") for m in nodule["hasMember"]}
    by_id = {o["id"]: o for o in observations}
    nodule_members = [by_id[i] for i in members]
    attenuation = sorted(
        (
            (str(o["valueQuantity"]["value"]), method_of(o))
            for o in nodule_members
            if code_of(o) == (DCM, "112031")
        ),
        key=str,
    )
    assert attenuation == [("120.0", "Maximum"), ("13.25", "Standard Deviation"), ("42.5", "Mean")]
    mean = next(o for o in nodule_members if method_of(o) == "Mean")
    assert isinstance(mean["valueQuantity"]["value"], Decimal)
    assert mean["valueQuantity"] == {
        "value": Decimal("42.5"),
        "unit": "Hounsfield unit",
        "system": UCUM,
        "code": "[hnsf'U]",
    }
    assert mean["bodySite"]["coding"] == [{"system": SCT, "code": "39607008", "display": "Lung"}]
    assert {"system": SCT, "code": "24028007", "display": "Right"} in [
        c["valueCodeableConcept"]["coding"][0] for c in mean["component"]
    ]
    assert mean["partOf"] == mean["derivedFrom"] == [{"reference": "ImagingStudy/study-1"}]
    assert mean["basedOn"] == [{"reference": "ServiceRequest/o1"}]
    assert mean["subject"] == {"reference": "Patient/p1"}
    assert mean["status"] == "final"
    tracking = {i.get("system", ""): i["value"] for i in mean["identifier"]}
    assert tracking == {"urn:dicom:uid": "urn:oid:1.2.826.0.1.3680043.10.1.77", "": "Nodule 1"}
    assert nodule["valueCodeableConcept"]["coding"][0]["code"] == "27925004"  # the finding
    # the HAS PROPERTIES normality stays a component of the area, not an Observation
    area = next(o for o in nodule_members if code_of(o) == (SCT, "42798000"))
    normality = [c for c in area["component"] if c["code"].get("text") == "Normality"]
    assert [c["valueCodeableConcept"]["text"] for c in normality] == ["Abnormal"]
    assert not [o for o in observations if code_of(o) == (DCM, "121402")]
    evaluation = next(o for o in nodule_members if "valueCodeableConcept" in o)
    assert evaluation["code"]["text"] == "Conspicuity"
    assert report["result"] == [{"reference": f"Observation/{p['id']}"} for p in panels]
    assert report["status"] == "final" and report["imagingStudy"] == [{"reference": "ImagingStudy/study-1"}]


def test_image_references_travel_as_the_image_selection_extension() -> None:
    observations = by_type(mapped(tid1500()), "Observation")
    length = next(o for o in observations if code_of(o) == (SCT, "410668003"))
    (selection,) = length["extension"]
    assert selection["url"] == IMAGE_SELECTION
    parts = selection["extension"]
    assert parts[0] == {"url": "studyUid", "valueOid": f"urn:oid:{CT.StudyInstanceUID}"}
    instance = parts[1]["extension"]
    assert instance == [
        {"url": "uid", "valueOid": f"urn:oid:{CT.SOPInstanceUID}"},
        {
            "url": "sopClass",
            "valueCoding": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{CT.SOPClassUID}"},
        },
        {"url": "frame", "valuePositiveInt": 1},
    ]
    mean = next(o for o in observations if method_of(o) == "Mean")
    region = mean["extension"][0]["extension"]
    assert {"url": "regionType", "valueCode": "polyline"} in region
    assert [p["valueDecimal"] for p in region if p["url"] == "coordinate"][:2] == [
        Decimal("10.0"),
        Decimal("10.0"),
    ]


def test_ids_are_deterministic_and_a_correction_keeps_them() -> None:
    first = [r["id"] for r in mapped(tid1500())]
    assert first == [r["id"] for r in mapped(tid1500())]
    assert len(set(first)) == len(first)
    corrected = tid1500(sop_uid="1.2.826.0.1.3680043.10.1.1501")
    assert mapped(corrected)[0]["id"] != first[0]
    anchored = SrContext(
        patient="Patient/p1", imaging_study="study-1", now=NOW, anchor_uid="1.2.826.0.1.3680043.10.1.1500"
    )
    again = mapped(corrected, anchored)
    # anchored to the first document, the tracked groups and their measurements keep their ids
    assert [r["id"] for r in again] == first


def test_status_from_the_preliminary_and_verification_flags() -> None:
    unverified = mapped(tid1500(verified=False))  # Preliminary Flag FINAL, Verification UNVERIFIED
    assert {r["status"] for r in by_type(unverified, "Observation")} == {"final"}
    assert by_type(unverified, "DiagnosticReport")[0]["status"] == "preliminary"
    preliminary = mapped(tid1500(verified=False, final=False))
    assert {r["status"] for r in preliminary} == {"preliminary"}


def test_legacy_srt_codes() -> None:
    site = content(
        "CODE", "HAS CONCEPT MOD", ("G-C0E3", "SRT", "Finding Site"),
        ConceptCodeSequence=[code_item("T-28000", "SRT", "Lung")],
    )  # fmt: skip
    weird = content(
        "CODE",
        "HAS CONCEPT MOD",
        ("T-D0050", "SRT", "Tissue"),
        ConceptCodeSequence=[code_item("T-XXXXX", "SRT", "Odd")],
    )
    group = container(
        ("125007", "DCM", "Measurement Group"),
        [site, num(("G-D7FE", "SRT", "Length"), "4.50", ("mm", "UCUM", "mm"), ContentSequence=[weird])],
    )
    ds = sr_document(
        COMPREHENSIVE_SR, ("126000", "DCM", "Imaging Measurement Report"), [group], template="1500"
    )
    obs = next(o for o in by_type(mapped(ds), "Observation") if code_of(o) != (DCM, "125007"))
    assert obs["code"]["coding"] == [
        {"system": SCT, "code": "410668003", "display": "Length"},
        {"system": "http://snomed.info/srt", "code": "G-D7FE", "display": "Length"},
    ]
    assert obs["bodySite"]["coding"][0] == {"system": SCT, "code": "39607008", "display": "Lung"}
    assert obs["component"][0]["code"]["coding"] == [
        {"system": "http://snomed.info/srt", "code": "T-D0050", "display": "Tissue"}
    ]
    assert str(obs["valueQuantity"]["value"]) == "4.50"


# ---- dose


def dose(ds: Dataset) -> tuple[dict[str, Any], dict[str, Any]]:
    resources = mapped(ds)
    (observation,) = by_type(resources, "Observation")
    (report,) = by_type(resources, "DiagnosticReport")
    assert code_of(observation) == ("http://loinc.org", "73569-6")
    assert report["result"] == [{"reference": f"Observation/{observation['id']}"}]
    return observation, report


def components(observation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]["coding"][0]["code"]: c for c in observation["component"]}


def test_ct_dose_summary() -> None:
    observation, report = dose(ct_dose_sr())
    dlp = components(observation)["113813"]["valueQuantity"]
    assert (str(dlp["value"]), dlp["code"], dlp["system"]) == ("1234.50", "mGy.cm", UCUM)
    assert observation["focus"] == observation["partOf"] == [{"reference": "ImagingStudy/study-1"}]
    assert observation["effectiveDateTime"] == "2026-12-01T10:15:00Z"
    assert "CT Dose Length Product Total: 1234.50 mGy.cm" in observation["valueString"]
    assert components(observation)["121058"]["valueCodeableConcept"]["coding"][0]["code"] == "77477000"
    assert report["status"] == "preliminary"  # COMPLETE but UNVERIFIED


def test_badly_spelled_dose_units() -> None:
    observation, _ = dose(ct_dose_sr(dlp="987.6", dlp_unit="mGycm"))
    dlp = components(observation)["113813"]["valueQuantity"]
    assert (str(dlp["value"]), dlp["code"]) == ("987.6", "mGy.cm")
    assert observation["note"] == [{"text": "CT Dose Length Product Total: unit 'mGycm' read as mGy.cm"}]

    observation, _ = dose(fluoro_dose_sr())
    got = {code: c["valueQuantity"] for code, c in components(observation).items() if "valueQuantity" in c}
    assert {code: (str(q["value"]), q.get("code")) for code, q in got.items()} == {
        "113722": ("0.000016", "Gy.m2"),  # written '1.6e-005' 'Gym2'
        "113726": ("0.0000095", "Gy.m2"),
        "113727": ("0.0000065", "Gy.m2"),  # written '6.5' 'uGym2', converted exactly
        "113725": ("0.0123", "Gy"),
        "113730": ("312.5", "s"),
        "113731": ("48", "1"),
    }


def test_unreadable_dose_values_and_units_are_kept_honestly() -> None:
    observation, _ = dose(fluoro_dose_sr(units={"113722": ("n/a", "Gy.m2"), "113725": ("12", "Rad")}))
    parts = components(observation)
    assert parts["113722"]["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert parts["113725"]["valueQuantity"] == {"value": Decimal("12"), "unit": "Rad"}  # no UCUM code guessed


def test_mammography_glandular_dose_per_breast() -> None:
    observation, _ = dose(mammo_dose_sr())
    agd = [c["valueQuantity"] for c in observation["component"] if c["code"]["coding"][0]["code"] == "111637"]
    assert [(str(q["value"]), q["code"]) for q in agd] == [("1.25", "mGy"), ("1.3", "mGy")]
    assert [n["text"] for n in observation["note"]] == [
        "Accumulated Average Glandular Dose (Right): 0.0125 dGy converted exactly to mGy",
        "Accumulated Average Glandular Dose (Left): 0.013 dGy converted exactly to mGy",
    ]


def test_a_6000_item_fluoroscopy_rdsr_maps_in_well_under_a_second() -> None:
    events = 666  # 9 content items each, plus the accumulated totals: just over 6,000 items
    ds = part10(fluoro_dose_sr(events=events))  # read back from a file, as ingest reads it
    started = time.perf_counter()
    resources = sr_resources(ds, CTX)
    elapsed = time.perf_counter() - started
    print(f"\n{events}-event RDSR ({events * 9 + 14} content items) from a file: {elapsed * 1000:.0f} ms")
    assert elapsed < 3.0
    assert_valid_r4(resources[0])
    assert components(resources[0])["113722"]["valueQuantity"]["value"] == Decimal("0.000016")


def part10(ds: Dataset) -> Dataset:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return dcmread(buffer)


# ---- text and PDF


def test_text_sr_becomes_a_diagnostic_report() -> None:
    resources = mapped(tid2000())
    (report,) = by_type(resources, "DiagnosticReport")
    (length,) = by_type(resources, "Observation")  # the NUM of the findings
    assert str(length["valueQuantity"]["value"]) == "4.50"
    assert report["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "18748-4",
        "display": "Diagnostic imaging study",
    }
    assert report["status"] == "final"
    assert report["conclusion"] == "Follow-up CT in 12 months."
    (form,) = report["presentedForm"]
    assert form["contentType"] == "text/plain; charset=utf-8"
    text = base64.b64decode(form["data"]).decode("utf-8")
    assert "Findings\nSmall nodule in the right upper lobe." in text and "Impressions\nFollow-up CT" in text
    assert report["resultsInterpreter"] == [{"display": "Vera Verifier"}]
    assert report["performer"] == [{"display": "Rita Reader"}]
    assert report["result"] == [{"reference": f"Observation/{length['id']}"}]


def test_text_report_status_from_its_flags() -> None:
    def status(completion: str, verification: str) -> str:
        (report,) = by_type(
            mapped(tid2000(completion=completion, verification=verification)), "DiagnosticReport"
        )
        return str(report["status"])

    assert status("COMPLETE", "VERIFIED") == "final"
    assert status("COMPLETE", "UNVERIFIED") == "preliminary"
    assert status("PARTIAL", "UNVERIFIED") == "partial"


def test_pydicom_sample_sr() -> None:
    resources = mapped(dcmread(get_testdata_file("test-SR.dcm")))
    (report,) = by_type(resources, "DiagnosticReport")
    assert report["status"] == "final"
    assert report["identifier"] == [
        {"system": "urn:dicom:uid", "value": "urn:oid:1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.4"}
    ]
    assert report["code"] == {"coding": [{"code": "1111", "display": "Diagnosis"}], "text": "Diagnosis"}
    assert all(str(o["valueQuantity"]["value"]) == "3" for o in by_type(resources, "Observation"))


def test_encapsulated_pdf_becomes_a_report_with_the_pdf() -> None:
    (report,) = mapped(encapsulated_pdf())
    (form,) = report["presentedForm"]
    assert form["contentType"] == "application/pdf" and form["title"] == "Outside report"
    assert base64.b64decode(form["data"]) == PDF_BYTES
    assert report["status"] == "final" and report["effectiveDateTime"] == "2026-12-01T12:00:00Z"


# ---- what is not a result, and what is broken


def test_an_image_maps_to_nothing() -> None:
    assert sr_resources(examples.ct, CTX) == []


def test_malformed_srs_map_what_can_be_read() -> None:
    name = ("1", "99X", "Thing")
    no_value = content("NUM", "CONTAINS", ("410668003", "SCT", "Length"))
    unknown_unit = num(("410668003", "SCT", "Length"), "3", ("furlong", "99X", "furlong"))
    not_a_number = num(("410668003", "SCT", "Length"), "abc", ("mm", "UCUM", "mm"))
    wrong_type = content("NUM", "CONTAINS", ("410668003", "SCT", "Length"), TextValue="12 mm")
    cyclic = Dataset()
    cyclic.RelationshipType, cyclic.ReferencedContentItemIdentifier = "INFERRED FROM", [1, 1]
    group = container(
        ("125007", "DCM", "Measurement Group"), [no_value, unknown_unit, not_a_number, wrong_type, cyclic]
    )
    nonsense = Dataset()
    nonsense.ValueType = "NUM"
    nonsense.MeasuredValueSequence = [Dataset()]  # no value, no unit, no name
    ds = sr_document(
        COMPREHENSIVE_SR, ("126000", "DCM", "Imaging Measurement Report"), [group, nonsense], template="1500"
    )
    ds.ContentSequence.append(content("CODE", "CONTAINS", name))
    result = map_sr(ds, CTX)
    for resource in result.resources:
        assert_valid_r4(resource)
    measurements = [o for o in by_type(result.resources, "Observation") if code_of(o) == (SCT, "410668003")]
    assert len(measurements) == 4
    absent = [o["dataAbsentReason"]["coding"][0]["code"] for o in measurements if "dataAbsentReason" in o]
    assert absent == ["unknown", "error", "unknown"]
    furlong = next(o for o in measurements if "valueQuantity" in o)
    assert furlong["valueQuantity"] == {"value": Decimal("3"), "unit": "furlong"}
    assert furlong["note"] == [{"text": "unit 'furlong' is not UCUM: kept as text"}]
    assert "1.1.5: by-reference to its own ancestor 1.1" in result.warnings
    assert len(by_type(result.resources, "DiagnosticReport")) == 1


def test_predecessors_are_listed_for_the_caller() -> None:
    ds = tid2000()
    sop = Dataset()
    sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID = COMPREHENSIVE_SR, "1.2.3.9"
    series = Dataset()
    series.ReferencedSOPSequence = [sop]
    study = Dataset()
    study.ReferencedSeriesSequence = [series]
    ds.PredecessorDocumentsSequence = [study]
    assert predecessor_uids(ds) == ("1.2.3.9",)


def test_two_groups_with_one_tracking_uid_and_items_sharing_an_observation_uid() -> None:
    def group(value: str) -> Dataset:
        uid = content(
            "UIDREF", "HAS OBS CONTEXT", ("112040", "DCM", "Tracking Unique Identifier"), UID="1.2.3.77"
        )
        measurement = num(
            ("410668003", "SCT", "Length"), value, ("mm", "UCUM", "mm"), ObservationUID="1.2.3.88"
        )
        return container(("125007", "DCM", "Measurement Group"), [uid, measurement])

    ds = sr_document(
        COMPREHENSIVE_SR, ("126000", "DCM", "Imaging Measurement Report"), [group("1"), group("2")]
    )
    result = map_sr(ds, CTX)
    ids = [r["id"] for r in result.resources]
    assert len(ids) == len(set(ids)) == 4  # two panels, one length (the second is dropped), the report
    panels = [
        r for r in result.resources if r["resourceType"] == "Observation" and code_of(r) == (DCM, "125007")
    ]
    assert len(panels) == 2
    assert [w for w in result.warnings if w.startswith("duplicate Observation id")]


def test_read_from_a_file_maps_as_in_memory() -> None:
    """The reader takes raw values and caches parsed concept names: the same result as from
    converted elements."""
    for make in (tid1500, tid2000, ct_dose_sr, mammo_dose_sr):
        ds = make()
        in_memory = sr_resources(ds, CTX)
        assert sr_resources(part10(ds), CTX) == in_memory


def test_segments_and_3d_regions_in_the_image_selection() -> None:
    seg = Dataset()
    seg.ReferencedSOPClassUID, seg.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.3.50"
    seg.ReferencedSegmentNumber = [1, 2]
    segment = content(
        "IMAGE", "CONTAINS", ("121191", "DCM", "Referenced Segment"), ReferencedSOPSequence=[seg]
    )
    region = content(
        "SCOORD3D", "CONTAINS", ("111030", "DCM", "Image Region"),
        GraphicType="POINT", GraphicData=[1.5, -2.0, 3.25], ReferencedFrameOfReferenceUID="1.2.3.60",
    )  # fmt: skip
    volume = num(("118565006", "SCT", "Volume"), "12.0", ("mm3", "UCUM", "cubic millimeter"))
    group = container(("125007", "DCM", "Measurement Group"), [segment, region, volume])
    ds = sr_document(
        COMPREHENSIVE_SR, ("126000", "DCM", "Imaging Measurement Report"), [group], template="1500"
    )
    obs = next(o for o in by_type(mapped(ds), "Observation") if code_of(o) == (SCT, "118565006"))
    selections = [e["extension"] for e in obs["extension"]]
    assert selections[0][1]["extension"][2:] == [
        {"url": "segment", "valuePositiveInt": 1},
        {"url": "segment", "valuePositiveInt": 2},
    ]
    assert selections[1][1:] == [
        {"url": "regionType", "valueCode": "point"},
        {"url": "coordinate", "valueDecimal": Decimal("1.5")},
        {"url": "coordinate", "valueDecimal": Decimal("-2.0")},
        {"url": "coordinate", "valueDecimal": Decimal("3.25")},
        {"url": "frameOfReferenceUid", "valueOid": "urn:oid:1.2.3.60"},
    ]
