"""ORU^R01 out, as hl7apy reads it: field by field, in both versions, both text styles and the
character sets a destination may take; every text escaped."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message, Segment
from hl7apy.parser import parse_message

from mapping.hl7.er7 import Delimiters, unescape
from mapping.hl7.oru import OruProfile, Sender, build_oru

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
PDF = b"%PDF-1.4\n%synthetic\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def report(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5", "display": "XR Chest 2V"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-12-01T09:30:00+01:00",
        "issued": "2026-12-02T10:00:00Z",
        "resultsInterpreter": [{"display": "Smith, Jane", "identifier": {"value": "D123"}}],
        "conclusion": "No acute finding.",
        "presentedForm": [
            {"contentType": "text/plain", "data": _b64(b"Findings: clear.\n\nLungs: normal.")},
            {"contentType": "application/pdf", "data": _b64(PDF)},
        ],
    }
    body.update(changes)
    return body


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [
        {
            "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            "system": "urn:oid:1.2.3.4",
            "value": "PAT-1",
        },
        {"system": "urn:facade:patient-id", "value": "LOCAL-9"},
    ],
    "name": [{"family": "Doe", "given": ["Jane", "Q"]}],
    "birthDate": "1970-01-02",
    "gender": "female",
}


def _id(code: str, value: str, **more: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": V2_0203, "code": code}]}, "value": value, **more}


ORDER = {
    "resourceType": "ServiceRequest",
    "id": "sr1",
    "identifier": [
        _id("PLAC", "PLC-1", assigner={"display": "RIS"}),
        _id("FILL", "FIL-1", system="urn:oid:1.2.9"),
        _id("ACSN", "ACC-1"),
    ],
    "code": {"coding": [{"system": "http://radlex.org", "code": "RPID16", "display": "XR CHEST PA LAT"}]},
}


def build(body: dict[str, Any] | None = None, **profile: Any) -> bytes:
    return build_oru(
        body or report(),
        patient=PATIENT,
        order=ORDER,
        study_uid="1.2.826.0.1.3680043.10.1.1",
        profile=OruProfile(**profile),
        sender=Sender("FACADE", "HOSP"),
        control_id="ORU-1",
        now=NOW,
    )


def parsed(raw: bytes, codec: str = "ascii", *, strict: bool = True) -> Message:
    """As hl7apy reads it, strictly: the structure, segments, required fields, types and lengths of
    the version."""
    level = VALIDATION_LEVEL.STRICT if strict else VALIDATION_LEVEL.TOLERANT
    message = parse_message(raw.decode(codec), validation_level=level, find_groups=True)
    if strict:
        assert message.validate()
    return message


def segments(message: Message, name: str) -> list[Segment]:
    def walk(node: Any) -> Iterator[Segment]:
        for child in node.children:
            if child.classname == "Segment":
                yield child
            else:
                yield from walk(child)

    return [s for s in walk(message) if s.name == name]


def text(er7: str) -> str:
    return unescape(er7, Delimiters())


@pytest.mark.parametrize("version", ["2.5.1", "2.3.1"])
def test_every_segment_field_by_field(version: str) -> None:
    message = parsed(build(version=version))
    assert [s.name for s in segments(message, "MSH") + segments(message, "PID")] == ["MSH", "PID"]
    msh = message.msh
    assert msh.msh_3.to_er7() == "FACADE" and msh.msh_4.to_er7() == "HOSP"
    assert msh.msh_9.to_er7() == "ORU^R01^ORU_R01" and msh.msh_10.to_er7() == "ORU-1"
    assert msh.msh_11.to_er7() == "P" and msh.msh_12.to_er7() == version
    assert msh.msh_7.to_er7() == "20261203100000+0000" and msh.msh_18.to_er7() == ""
    (pid,) = segments(message, "PID")
    first, second = pid.pid_3
    assert first.cx_1.to_er7() == "PAT-1" and first.cx_4.hd_2.to_er7() == "1.2.3.4"
    assert first.cx_4.hd_3.to_er7() == "ISO" and first.cx_5.to_er7() == "MR"
    assert second.cx_1.to_er7() == "LOCAL-9" and second.cx_4.hd_2.to_er7() == "urn:facade:patient-id"
    assert pid.pid_5.to_er7() == "Doe^Jane^Q"
    assert pid.pid_7.to_er7() == "19700102" and pid.pid_8.to_er7() == "F"
    (pv1,) = segments(message, "PV1")
    assert pv1.pv1_2.to_er7() == "U"
    (orc,) = segments(message, "ORC")
    assert orc.orc_1.to_er7() == "RE" and orc.orc_5.to_er7() == "CM"
    assert orc.orc_2.to_er7() == "PLC-1^RIS" and orc.orc_3.to_er7() == "FIL-1^^1.2.9^ISO"
    (obr,) = segments(message, "OBR")
    assert obr.obr_2.to_er7() == "PLC-1^RIS" and obr.obr_3.to_er7() == "FIL-1^^1.2.9^ISO"
    assert obr.obr_4.to_er7() == "RPID16^XR CHEST PA LAT^RADLEX"  # the order's code first
    assert obr.obr_7.to_er7() == "20261201093000+0100"
    assert obr.obr_18.to_er7() == "ACC-1" and obr.obr_22.to_er7() == "20261202100000+0000"
    assert obr.obr_24.to_er7() == "RAD" and obr.obr_25.to_er7() == "F"
    assert obr.obr_32.to_er7() == "D123&Smith&Jane"
    obx = segments(message, "OBX")
    assert [o.obx_1.to_er7() for o in obx] == [str(n) for n in range(1, len(obx) + 1)]
    assert [o.obx_2.to_er7() for o in obx] == ["TX", "TX", "TX", "TX", "ED", "ST"]
    assert [o.obx_3.to_er7().split("^")[0] for o in obx] == ["18782-3"] * 3 + ["19005-8", "18748-4", "113014"]
    assert [text(o.obx_5.to_er7()) for o in obx[:4]] == [
        "Findings: clear.",
        "",
        "Lungs: normal.",
        "No acute finding.",
    ]
    ed = obx[4].obx_5.to_er7().split("^")
    assert ed[1:4] == ["application", "pdf", "Base64"] and base64.b64decode(ed[4]) == PDF
    assert obx[5].obx_3.to_er7() == "113014^DICOM Study^DCM"
    assert obx[5].obx_5.to_er7() == "1.2.826.0.1.3680043.10.1.1"
    assert {o.obx_11.to_er7() for o in obx} == {"F"}


def test_ft_is_one_obx_per_section_with_line_breaks() -> None:
    raw = build(text="ft")
    obx = segments(parsed(raw), "OBX")
    assert [o.obx_2.to_er7() for o in obx] == ["FT", "FT", "ED", "ST"]
    first = raw.decode().split("\r")[5].split("|")
    assert first[:3] == ["OBX", "1", "FT"]
    assert first[5] == "Findings: clear.\\.br\\\\.br\\Lungs: normal."
    assert text(first[5]) == "Findings: clear.\n\nLungs: normal."


@pytest.mark.parametrize("status", ["amended", "corrected", "appended"])
def test_a_changed_report_is_a_correction_throughout(status: str) -> None:
    message = parsed(build(report(status=status)))
    (obr,) = segments(message, "OBR")
    assert obr.obr_25.to_er7() == "C"
    assert {o.obx_11.to_er7() for o in segments(message, "OBX")} == {"C"}


def test_a_report_not_final_is_not_sent() -> None:
    with pytest.raises(ValueError, match="final"):
        build(report(status="preliminary"))


def test_every_delimiter_in_a_text_is_escaped() -> None:
    nasty = "a|b^c&d~e\\f"
    body = report(
        conclusion=nasty,
        presentedForm=[{"contentType": "text/plain", "data": _b64(f"{nasty}\r\nline 2".encode())}],
        resultsInterpreter=[{"display": "O'Brien|x, Pat^y", "identifier": {"value": "I&D"}}],
    )
    patient = {**PATIENT, "name": [{"family": "Smith&Jones", "given": ["A^B"]}]}
    raw = build_oru(
        body,
        patient=patient,
        order=None,
        study_uid=None,
        profile=OruProfile(),
        sender=Sender("FAC|ADE", "H^OSP"),
        control_id="X~1",
        now=NOW,
    )
    message = parsed(raw)
    assert len(segments(message, "OBX")) == 3  # nothing split a field or a segment
    obx = segments(message, "OBX")
    assert text(obx[0].obx_5.to_er7()) == nasty and text(obx[1].obx_5.to_er7()) == "line 2"
    assert text(obx[2].obx_5.to_er7()) == nasty
    assert obx[2].obx_5.to_er7() == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"
    assert text(message.msh.msh_3.to_er7()) == "FAC|ADE" and text(message.msh.msh_10.to_er7()) == "X~1"
    (pid,) = segments(message, "PID")
    assert text(pid.pid_5.xpn_1.to_er7()) == "Smith&Jones" and text(pid.pid_5.xpn_2.to_er7()) == "A^B"
    (obr,) = segments(message, "OBR")
    assert [text(p) for p in obr.obr_32.to_er7().split("&")] == ["I&D", "O'Brien|x", "Pat^y"]
    # no order: no order numbers, the report's own code
    assert obr.obr_2.to_er7() == "" and obr.obr_4.to_er7() == "36643-5^XR Chest 2V^LN"


@pytest.mark.parametrize(
    ("charset", "codec", "msh18", "name"),
    [
        ("ASCII", "ascii", "", "Muller"),
        ("8859/1", "latin-1", "8859/1", "Müller"),
        ("UNICODE UTF-8", "utf-8", "UNICODE UTF-8", "Müller"),
    ],
)
@pytest.mark.parametrize("version", ["2.5.1", "2.3.1"])
def test_charsets(charset: str, codec: str, msh18: str, name: str, version: str) -> None:
    patient = {**PATIENT, "name": [{"family": "Müller", "given": ["Zoë"]}]}
    body = report(conclusion="Keine Läsion ≥ 5 mm")
    raw = build_oru(
        body,
        patient=patient,
        order=ORDER,
        study_uid=None,
        profile=OruProfile(version=version, charset=charset),
        sender=Sender(),
        control_id="C",
        now=NOW,
    )
    raw.decode(codec)  # encoded in the set it declares
    message = parsed(raw, codec)
    assert message.msh.msh_18.to_er7() == msh18
    (pid,) = segments(message, "PID")
    assert pid.pid_5.xpn_1.to_er7() == name
    impression = segments(message, "OBX")[-2]
    expected = {
        "ascii": "Keine Lasion ? 5 mm",
        "latin-1": "Keine Läsion ? 5 mm",
        "utf-8": "Keine Läsion ≥ 5 mm",
    }
    assert impression.obx_5.to_er7() == expected[codec]


def test_a_patient_unknown_and_a_period() -> None:
    body = report(effectivePeriod={"start": "2026-12-01"}, issued=None, resultsInterpreter=[])
    del body["effectiveDateTime"]
    body = {k: v for k, v in body.items() if v is not None}
    raw = build_oru(
        body,
        patient=None,
        order=None,
        study_uid=None,
        profile=OruProfile(),
        sender=Sender(),
        control_id="C",
        now=NOW,
    )
    message = parsed(raw, strict=False)  # PID-5 (required) is empty: we know no name
    (obr,) = segments(message, "OBR")
    assert obr.obr_7.to_er7() == "20261201" and obr.obr_22.to_er7() == "20261203100000+0000"
    (pid,) = segments(message, "PID")
    assert pid.pid_3.to_er7() == "p1^^^FACADE"  # the Patient's FHIR id, assigned by us


def test_profile_problems() -> None:
    assert OruProfile().problem() is None
    assert "2.5.1" in (OruProfile(version="2.4").problem() or "")
    assert "charset" in (OruProfile(charset="KOI8").problem() or "")
    assert OruProfile.from_json(OruProfile(version="2.3.1", text="ft").to_json()) == OruProfile(
        version="2.3.1", text="ft"
    )


def test_base64_broken_into_lines_is_read() -> None:
    data = _b64(b"First line\nSecond line")
    body = report(
        presentedForm=[{"contentType": "text/plain; charset=utf-8", "data": f"{data[:8]}\n{data[8:]}"}]
    )
    obx = segments(parsed(build(body)), "OBX")
    assert [text(o.obx_5.to_er7()) for o in obx[:2]] == ["First line", "Second line"]
