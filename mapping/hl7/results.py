"""ORU^R01 in: a report written in the RIS or a reporting system -> what it says
(`../shared/reference/hl7-orders-worklist.md` §4).

Structure `MSH PID [PV1] { [ORC] OBR [NTE] { OBX [NTE] } }`, walked in order like the orders:
each OBR opens a report, the OBX that follow belong to it.
- The order: OBR-2 / OBR-3 placer / filler order numbers (ORC-2 / ORC-3 when OBR leaves them
  empty), OBR-18 the accession number (v2.3.1 convention, kept by RAD-128).
- OBR-25 result status (table 0123, first letter, so `Final` reads as F): P preliminary, F final,
  C correction, A some results, R not verified, X cannot obtain, I / O / S ordered or in
  progress; D (delete) and W (wrong patient) mark the report entered-in-error.
- OBX-2 TX / ST / FT / CE / CWE lines are the report text in order (FT's \\.br\\ breaks lines);
  lines whose OBX-3 is an impression (LOINC 19005-8, or the `&IMP` suffix convention) are also
  the conclusion; an OBX-11 D (deleted) line is left out. An ED OBX with
  `^application^pdf^Base64^…` is the report as PDF. An ST OBX whose OBX-3 is DICOM 113014
  (Study Instance UID, RAD-128) names the study.
What cannot be read is refused with an AE naming the segment and field (table 0357).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from mapping.dicom.facts import PatientFacts
from mapping.dicom.uid import valid_uid
from mapping.hl7.er7 import Er7Message, Segment
from mapping.hl7.errors import DATA_TYPE, REQUIRED_FIELD, SEGMENT_SEQUENCE, TABLE_VALUE, Hl7Error
from mapping.hl7.orders import OrderRules, coded, entity_id, patient_from_pid, timestamp
from mapping.order.facts import Coded, EntityId

# OBR-25 (HL7 table 0123) -> FHIR DiagnosticReport.status
RESULT_STATUS = {
    "P": "preliminary",
    "F": "final",
    "C": "corrected",
    "A": "partial",
    "R": "preliminary",
    "X": "cancelled",
    "I": "registered",
    "O": "registered",
    "S": "registered",
    "D": "entered-in-error",
    "W": "entered-in-error",
}
_TEXT_TYPES = frozenset({"TX", "ST", "FT", "CE", "CWE", "CF"})
_IMPRESSION_CODES = frozenset({"19005-8", "IMP"})
STUDY_UID_CODE = "113014"  # DCM "DICOM Study"


@dataclass(frozen=True)
class ReportFacts:
    """What one OBR and its OBX say."""

    placer: EntityId
    filler: EntityId
    accession: EntityId
    code: Coded | None  # OBR-4 universal service identifier
    status: str  # FHIR DiagnosticReport.status from OBR-25
    observed_at: str  # OBR-7 as HL7 DTM ('' when absent)
    reported_at: str  # OBR-22 as HL7 DTM ('' when absent)
    interpreter: str  # OBR-32 principal result interpreter, name as "family^given" ('' when absent)
    interpreter_id: str
    text: tuple[str, ...]  # every report line, in order
    impression: tuple[str, ...]  # the impression lines
    pdfs: tuple[bytes, ...]  # the report as PDF
    study_uid: str  # from an OBX 113014 ('' when absent)
    sequence: int  # the OBR's position in the message (1-based), for ERR

    def keys(self) -> dict[str, EntityId]:
        return {"placer": self.placer, "filler": self.filler, "accession": self.accession}


@dataclass(frozen=True)
class ResultMessage:
    patient: PatientFacts
    patient_issuer: str
    reports: tuple[ReportFacts, ...]


def result_message(message: Er7Message, *, rules: OrderRules) -> ResultMessage:
    pid = message.first("PID")
    if pid is None:
        raise Hl7Error.error(REQUIRED_FIELD, "an ORU^R01 needs a PID segment", segment="PID", field=3)
    patient, issuer, _ = patient_from_pid(pid, rules)
    groups = _groups(message)
    if not groups:
        raise Hl7Error.error(SEGMENT_SEQUENCE, "an ORU^R01 needs an OBR segment", segment="OBR", field=1)
    return ResultMessage(patient, issuer, tuple(_report(*g, sequence=i) for i, g in enumerate(groups, 1)))


def _groups(message: Er7Message) -> list[tuple[Segment | None, Segment, list[Segment]]]:
    groups: list[tuple[Segment | None, Segment, list[Segment]]] = []
    orc: Segment | None = None
    for segment in message.segments:
        if segment.name == "ORC":
            orc = segment
        elif segment.name == "OBR":
            groups.append((orc, segment, []))
            orc = None
        elif segment.name == "OBX" and groups:
            groups[-1][2].append(segment)
    return groups


def _report(orc: Segment | None, obr: Segment, obxs: list[Segment], *, sequence: int) -> ReportFacts:
    placer = entity_id(obr, 2) if obr.value(2).strip() else entity_id(orc, 2)
    filler = entity_id(obr, 3) if obr.value(3).strip() else entity_id(orc, 3)
    accession = entity_id(obr, 18, simple=True)
    if not (placer.value or filler.value or accession.value):
        raise Hl7Error.error(
            REQUIRED_FIELD,
            "OBR names no order: OBR-2, OBR-3 and OBR-18 are empty",
            segment="OBR",
            sequence=sequence,
            field=3,
        )
    flag = obr.value(25).strip().upper()[:1]
    if not flag:
        raise Hl7Error.error(
            REQUIRED_FIELD, "OBR-25 (result status) is empty", segment="OBR", sequence=sequence, field=25
        )
    status = RESULT_STATUS.get(flag)
    if status is None:
        raise Hl7Error.error(
            TABLE_VALUE,
            f"OBR-25 {flag} is not a result status of HL7 table 0123",
            segment="OBR",
            sequence=sequence,
            field=25,
        )
    text: list[str] = []
    impression: list[str] = []
    pdfs: list[bytes] = []
    study_uid = ""
    for obx in obxs:
        if obx.value(11).strip().upper()[:1] == "D":  # a deleted line
            continue
        kind = obx.value(2).strip().upper()
        identifier = obx.value(3).strip()
        if kind == "ED":
            pdfs += _pdfs(obx)
        elif identifier == STUDY_UID_CODE:
            study_uid = _study_uid(obx)
        elif kind in _TEXT_TYPES:
            lines = _lines(obx, kind)
            text += lines
            if _is_impression(obx):
                impression += lines
    return ReportFacts(
        placer=placer,
        filler=filler,
        accession=accession,
        code=coded(obr, 4),
        status=status,
        observed_at=timestamp(obr, 7, "OBR", sequence, required=False),
        reported_at=timestamp(obr, 22, "OBR", sequence, required=False),
        interpreter="^".join(p for p in (obr.value(32, 1, 2).strip(), obr.value(32, 1, 3).strip()) if p),
        interpreter_id=obr.value(32, 1, 1).strip(),
        text=tuple(text),
        impression=tuple(impression),
        pdfs=tuple(pdfs),
        study_uid=study_uid,
        sequence=sequence,
    )


def _lines(obx: Segment, kind: str) -> list[str]:
    """OBX-5's repetitions as lines (CE / CWE: the text, else the code)."""
    out: list[str] = []
    for r in range(len(obx.repetitions(5))):
        if kind in ("CE", "CWE", "CF"):
            value = obx.value(5, 2, repetition=r) or obx.value(5, 1, repetition=r)
        else:
            value = obx.value(5, repetition=r) if kind == "FT" else _whole(obx, r)
        out += value.split("\n") if kind == "FT" else [value]
    return out


def _whole(obx: Segment, repetition: int) -> str:
    """A TX / ST value as one text: its component and subcomponent separators are not structure
    (a report line may hold a ^ or an &)."""
    return obx.text(5, repetition)


def _is_impression(obx: Segment) -> bool:
    """OBX-3 is LOINC 19005-8 or ends in the `&IMP` suffix (read raw: `&` is the subcomponent
    separator, and senders put it in the identifier unescaped)."""
    identifier = obx.raw(3).split(obx.delimiters.component)[0].strip().upper()
    return identifier in _IMPRESSION_CODES or identifier.endswith(obx.delimiters.subcomponent + "IMP")


def _pdfs(obx: Segment) -> list[bytes]:
    """ED: source^type^subtype^encoding^data; a PDF in Base64 (other documents are left out)."""
    out: list[bytes] = []
    for r in range(len(obx.repetitions(5))):
        subtype = obx.value(5, 3, repetition=r).strip().lower()
        encoding = obx.value(5, 4, repetition=r).strip().lower()
        if subtype != "pdf":
            continue
        if encoding != "base64":
            raise Hl7Error.error(DATA_TYPE, "OBX-5 ED: a PDF must be Base64-encoded", segment="OBX", field=5)
        try:
            out.append(base64.b64decode(obx.value(5, 5, repetition=r).strip(), validate=True))
        except (binascii.Error, ValueError):
            raise Hl7Error.error(
                DATA_TYPE, "OBX-5 ED: the PDF is not valid Base64", segment="OBX", field=5
            ) from None
    return out


def _study_uid(obx: Segment) -> str:
    uid = obx.value(5).strip()
    if not valid_uid(uid):
        raise Hl7Error.error(DATA_TYPE, "OBX-5: the Study Instance UID is not a UID", segment="OBX", field=5)
    return uid
