"""ORM^O01 (v2.3.1, with ZDS) and OMI^O23 (v2.5.1, with TQ1 and IPC) -> one order model
(`mapping.order.facts`), per IHE RAD TF-2x Appendix B as dcm4chee documents it
(`../shared/reference/hl7-orders-worklist.md` §2).

The segments are walked in order rather than parsed into hl7apy's groups, so a v2.3.1 message
carrying IPC, a Z segment, a missing EVN or PV1 or a misspelled structure name still reads:
each ORC opens a requested procedure; the OBR, NTE, TQ1, ZDS and IPC segments that follow
belong to it. One OBR is one requested procedure; in an OMI each IPC is one scheduled step
(several IPC, several steps); an ORM has one step per OBR. What we cannot read is refused with
an AE naming the segment and field (HL7 table 0357).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from mapping.dicom.facts import IssuerResolver, PatientFacts, issuer_uri, universal_entity_uri
from mapping.dicom.uid import valid_uid
from mapping.hl7.details import patient_details
from mapping.hl7.er7 import Er7Message, Segment
from mapping.hl7.errors import DATA_TYPE, REQUIRED_FIELD, SEGMENT_SEQUENCE, TABLE_VALUE, Hl7Error
from mapping.order.facts import Coded, EntityId, OrderMessage, Person, RequestedProcedure, ScheduledStep

# HL7 table 0119 order control codes we act on (`mapping.order.control` says how)
ORDER_CONTROLS = frozenset({"NW", "XO", "XX", "CA", "OC", "DC", "OD", "SC", "SN", "NA", "HD", "OH", "RL"})
# ORC-7.6 / OBR-27.6 / TQ1-9 priority -> (0040,1003) Requested Procedure Priority
_PRIORITY = {"S": "STAT", "A": "HIGH", "R": "ROUTINE", "P": "HIGH", "C": "HIGH", "T": "MEDIUM"}
# PID-8 administrative sex -> (0010,0040): A (ambiguous) is O (other); U and N say nothing
_SEX = {"M": "M", "F": "F", "O": "O", "A": "O"}
# PS3.3 C.7.3.1.1.1 defined terms, the values OBR-24 / IPC-5 may carry as they are
MODALITIES = frozenset(
    [
        "AR",
        "ASMT",
        "AU",
        "BDUS",
        "BI",
        "BMD",
        "CR",
        "CT",
        "CTPROTOCOL",
        "DG",
        "DOC",
        "DX",
        "ECG",
        "EPS",
        "ES",
        "FID",
        "GM",
        "HC",
        "HD",
        "IO",
        "IOL",
        "IVOCT",
        "IVUS",
        "KER",
        "KO",
        "LEN",
        "LS",
        "MG",
        "MR",
        "M3D",
        "NM",
        "OAM",
        "OCT",
        "OP",
        "OPM",
        "OPT",
        "OPTBSV",
        "OPTENF",
        "OPV",
        "OSS",
        "OT",
        "PLAN",
        "PR",
        "PT",
        "PX",
        "REG",
        "RESP",
        "RF",
        "RG",
        "RTDOSE",
        "RTIMAGE",
        "RTPLAN",
        "RTRECORD",
        "RTSTRUCT",
        "RWV",
        "SEG",
        "SM",
        "SMR",
        "SR",
        "SRF",
        "STAIN",
        "TEXTUREMAP",
        "TG",
        "US",
        "VA",
        "XA",
        "XC",
    ]
)
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,4})?)?([+-]\d{4})?$")


@dataclass(frozen=True)
class OrderRules:
    """What a site configures about the orders it receives."""

    default_system: str  # system of a Patient ID whose assigning authority we cannot name
    issuer_system: IssuerResolver  # local assigning authority -> URI (as for DICOM issuers)
    patient_id_authority: str = ""  # PID-3.4.1 of the identifier to use; '' = first MR, else first
    # ORM carries no Scheduled Station AE Title: "MODALITY" or "MODALITY@LOCATION" (PV1-3.1) -> AEs
    stations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    modalities: Mapping[str, str] = field(default_factory=dict)  # OBR-24 / IPC-5 value -> modality


def order_message(message: Er7Message, *, charset: str, rules: OrderRules) -> OrderMessage:
    """The order an ORM^O01 or OMI^O23 carries. Raises Hl7Error (AE) naming what is missing or
    unreadable."""
    pid = message.first("PID")
    if pid is None:
        raise Hl7Error.error(REQUIRED_FIELD, "the message has no PID segment", segment="PID")
    patient, issuer, others = patient_from_pid(pid, rules)
    pv1 = message.first("PV1")
    msh_time = timestamp(message.msh, 7, "MSH", required=False)
    details = patient_details(message).sent  # AL1, OBX weight / height, PV1: the patient's, every order's
    procedures: list[RequestedProcedure] = []
    for index, group in enumerate(_order_groups(message), start=1):
        procedure = _procedure(group, index, pv1, msh_time, rules)
        procedures.append(replace(procedure, patient_issuer=issuer, **details))
    if not procedures:
        raise Hl7Error.error(REQUIRED_FIELD, "the message has no ORC segment", segment="ORC")
    return OrderMessage(patient, issuer, others, tuple(procedures), charset)


@dataclass
class _Group:
    orc: Segment
    obr: Segment | None = None
    tq1: Segment | None = None
    zds: Segment | None = None
    ipcs: list[Segment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _order_groups(message: Er7Message) -> list[_Group]:
    groups: list[_Group] = []
    for segment in message.segments:
        if segment.name == "ORC":
            groups.append(_Group(segment))
            continue
        if segment.name not in ("OBR", "TQ1", "ZDS", "IPC", "NTE"):
            continue
        if not groups:
            if segment.name == "NTE":  # a note on the patient, before any order
                continue
            raise Hl7Error.error(
                SEGMENT_SEQUENCE, f"{segment.name} before the first ORC", segment=segment.name
            )
        group = groups[-1]
        if segment.name == "OBR":
            group.obr = group.obr or segment
        elif segment.name == "TQ1":
            group.tq1 = group.tq1 or segment
        elif segment.name == "ZDS":
            group.zds = group.zds or segment
        elif segment.name == "IPC":
            group.ipcs.append(segment)
        elif group.obr is not None:
            group.notes.append(segment.value(3))
    return groups


def _procedure(
    g: _Group, n: int, pv1: Segment | None, msh_time: str, rules: OrderRules
) -> RequestedProcedure:
    orc, obr = g.orc, g.obr
    control = orc.value(1).strip().upper()
    if not control:
        raise Hl7Error.error(
            REQUIRED_FIELD, "ORC-1 (order control) is empty", segment="ORC", sequence=n, field=1
        )
    if control not in ORDER_CONTROLS:
        raise Hl7Error.error(
            TABLE_VALUE, f"order control {control[:2]} is not supported", segment="ORC", sequence=n, field=1
        )
    placer = entity_id(orc, 2) if orc.value(2) else entity_id(obr, 2)
    filler = entity_id(orc, 3) if orc.value(3) else entity_id(obr, 3)
    first_ipc = g.ipcs[0] if g.ipcs else None
    accession = (
        entity_id(first_ipc, 1)
        if first_ipc is not None and first_ipc.value(1)
        else entity_id(obr, 18, simple=True)
    )
    rp_id = (first_ipc.value(2) if first_ipc is not None else "") or _value(obr, 19)
    study_uid = (first_ipc.value(3) if first_ipc is not None else "") or (g.zds.value(1) if g.zds else "")
    if study_uid and not valid_uid(study_uid.strip()):
        where = ("IPC", 3) if first_ipc is not None and first_ipc.value(3) else ("ZDS", 1)
        raise Hl7Error.error(
            DATA_TYPE, "the Study Instance UID is not a UID", segment=where[0], sequence=n, field=where[1]
        )
    if not (placer.value or filler.value or accession.value):
        raise Hl7Error.error(
            REQUIRED_FIELD,
            "the order has no placer or filler order number (ORC-2 / ORC-3)",
            segment="ORC",
            sequence=n,
            field=2,
        )
    code = coded(obr, 44) or coded(obr, 4)
    description = _value(obr, 44, 2) or _value(obr, 4, 2)
    start = _start(g, n) or timestamp(orc, 9, "ORC", n, required=False) or msh_time
    priority = _priority(g)
    procedure_steps = _steps(g, n, start, code, obr, pv1, rules)
    return RequestedProcedure(
        control=control,
        order_status=orc.value(5).strip().upper(),
        placer=placer,
        filler=filler,
        accession=accession,
        requested_procedure_id=rp_id.strip(),
        study_uid=study_uid.strip(),
        code=code,
        description=description,
        priority=priority,
        requesting_physician=_xcn(obr, 16)
        if obr is not None and obr.value(16, 1) + obr.value(16, 2)
        else _xcn(orc, 12),
        referring_physician=_xcn(pv1, 8),
        reason=_value(obr, 31, 2) or _value(obr, 31, 1),
        reason_codes=tuple(c for c in [coded(obr, 31)] if c is not None and c.scheme),
        medical_alerts=_value(obr, 13),
        patient_state=_value(obr, 12, 2) or _value(obr, 12, 1),
        pregnancy_status=3
        if pv1 is not None and "B6" in [r.split(pv1.delimiters.component)[0] for r in pv1.repetitions(15)]
        else None,
        admission_id=(pv1.value(19) if pv1 is not None else ""),
        transport=_value(obr, 30),
        comments="\n".join(t for t in g.notes if t),
        ordered_at=timestamp(orc, 9, "ORC", n, required=False),
        steps=procedure_steps,
    )


def _steps(  # noqa: PLR0917
    g: _Group,
    n: int,
    start: str,
    code: Coded | None,
    obr: Segment | None,
    pv1: Segment | None,
    rules: OrderRules,
) -> tuple[ScheduledStep, ...]:
    date, time = start[:8], start[8:].split("+", maxsplit=1)[0].split("-", maxsplit=1)[0]
    performer = _cnn(obr, 34)
    if g.ipcs:
        steps = []
        for ipc in g.ipcs:
            modality = _modality(ipc.value(5), rules)
            protocol = tuple(c for c in (_coded_rep(ipc, 6, r) for r in range(len(ipc.repetitions(6)))) if c)
            steps.append(
                ScheduledStep(
                    sps_id=ipc.value(4).strip(),
                    modality=modality,
                    start_date=date,
                    start_time=time,
                    description=(protocol[0].display if protocol else "") or (code.display if code else ""),
                    protocol=protocol,
                    station_aets=tuple(dict.fromkeys(a.strip() for a in _all(ipc, 9) if a.strip())),
                    station_name=ipc.value(7).strip(),
                    location=ipc.value(8, 1).strip(),
                    performing_physician=performer,
                )
            )
        return tuple(steps)
    if obr is None:
        return ()
    modality = _modality(obr.value(24), rules)
    location = pv1.value(3, 1).strip() if pv1 is not None else ""
    alternate = Coded(obr.value(4, 4), obr.value(4, 5), obr.value(4, 6)) if obr.value(4, 4) else None
    return (
        ScheduledStep(
            sps_id=obr.value(20).strip(),
            modality=modality,
            start_date=date,
            start_time=time,
            description=obr.value(4, 5) or obr.value(4, 2),
            protocol=(alternate,) if alternate else (),
            station_aets=rules.stations.get(f"{modality}@{location}") or rules.stations.get(modality, ()),
            performing_physician=performer,
        ),
    )


def _start(g: _Group, n: int) -> str:
    """Scheduled start: TQ1-7 (v2.5), else ORC-7.4 or OBR-27.4 (the TQ start of v2.3.1)."""
    if g.tq1 is not None and g.tq1.value(7):
        return timestamp(g.tq1, 7, "TQ1", n, required=False)
    for segment, name in ((g.orc, "ORC"), (g.obr, "OBR")):
        if segment is not None:
            n_field = 7 if name == "ORC" else 27
            text = segment.value(n_field, 4)
            if text:
                return _timestamp(text, name, n, n_field)
    return ""


def _priority(g: _Group) -> str:
    codes = [
        g.tq1.value(9) if g.tq1 is not None else "",
        g.orc.value(7, 6),
        g.obr.value(27, 6) if g.obr else "",
    ]
    code = next((c.strip().upper() for c in codes if c.strip()), "")
    return _PRIORITY.get(code[:1], "")


def patient_from_pid(pid: Segment, rules: OrderRules) -> tuple[PatientFacts, str, tuple[EntityId, ...]]:
    """PID-3 (the identifier the rules pick; the others), PID-5, PID-7, PID-8 -> the patient's
    facts as the DICOM index keeps them, its local issuer (PID-3.4.1) and its other ids."""
    ids = [r for r in range(len(pid.repetitions(3))) if pid.value(3, repetition=r).strip()]
    if not ids:
        raise Hl7Error.error(
            REQUIRED_FIELD, "PID-3 (patient identifier list) is empty", segment="PID", field=3
        )

    def authority(r: int) -> str:
        return pid.value(3, 4, 1, repetition=r).strip()

    chosen = next(
        (r for r in ids if rules.patient_id_authority and authority(r) == rules.patient_id_authority), None
    )
    if chosen is None:
        chosen = next((r for r in ids if pid.value(3, 5, repetition=r).strip().upper() == "MR"), ids[0])
    issuer = authority(chosen)
    universal = universal_entity_uri(
        pid.value(3, 4, 2, repetition=chosen).strip(), pid.value(3, 4, 3, repetition=chosen)
    )
    stated = universal or issuer_uri(issuer, rules.issuer_system)
    others = tuple(
        EntityId(
            pid.value(3, repetition=r).strip(),
            authority(r),
            pid.value(3, 4, 2, repetition=r),
            pid.value(3, 4, 3, repetition=r),
        )
        for r in ids
        if r != chosen
    )
    facts = PatientFacts(
        patient_id=pid.value(3, repetition=chosen).strip(),
        id_system=stated or rules.default_system,
        name=_xpn(pid, 5),
        birth_date=timestamp(pid, 7, "PID", required=False)[:8],
        sex=_SEX.get(pid.value(8).strip().upper()[:1], ""),
        issuer_stated=stated is not None,
    )
    return facts, issuer, others


def _xpn(segment: Segment, n: int) -> str:
    """XPN (family^given^middle^suffix^prefix) -> DICOM PN (family^given^middle^prefix^suffix);
    the legal name (XPN-7 = L) when several are sent, else the first."""
    reps = range(len(segment.repetitions(n)))
    chosen = next((r for r in reps if segment.value(n, 7, repetition=r).upper() == "L"), 0)
    parts = [segment.value(n, c, repetition=chosen).strip() for c in (1, 2, 3, 5, 4)]
    return "^".join(parts).rstrip("^")


def _xcn(segment: Segment | None, n: int) -> Person:
    """XCN (id^family^given^middle^suffix^prefix) -> Person with a DICOM PN."""
    if segment is None:
        return Person()
    parts = [segment.value(n, c).strip() for c in (2, 3, 4, 6, 5)]
    return Person(segment.value(n, 1).strip(), "^".join(parts).rstrip("^"))


def _cnn(segment: Segment | None, n: int) -> str:
    """OBR-34 technician: NDL whose first component is CNN (id&family&given&middle&suffix&prefix)."""
    if segment is None:
        return ""
    parts = [segment.value(n, 1, s).strip() for s in (2, 3, 4, 6, 5)]
    return "^".join(parts).rstrip("^")


def entity_id(segment: Segment | None, n: int, *, simple: bool = False) -> EntityId:
    """An EI field (value^namespace^universal id^type); `simple`: the whole first component."""
    if segment is None:
        return EntityId("")
    if simple:  # OBR-18 is ST in v2.3.1: the whole first component is the value
        return EntityId(segment.value(n).strip())
    return EntityId(
        segment.value(n, 1).strip(),
        segment.value(n, 2).strip(),
        segment.value(n, 3).strip(),
        segment.value(n, 4).strip(),
    )


def coded(segment: Segment | None, n: int) -> Coded | None:
    """A CE / CWE field's first repetition, None when empty."""
    return _coded_rep(segment, n, 0) if segment is not None else None


def _coded_rep(segment: Segment, n: int, r: int) -> Coded | None:
    code = segment.value(n, 1, repetition=r).strip()
    display = segment.value(n, 2, repetition=r).strip()
    if not code and not display:
        return None
    return Coded(code, display, segment.value(n, 3, repetition=r).strip())


def _value(segment: Segment | None, n: int, component: int = 1) -> str:
    return segment.value(n, component).strip() if segment is not None else ""


def _all(segment: Segment, n: int) -> list[str]:
    return [segment.value(n, repetition=r) for r in range(len(segment.repetitions(n)))]


def _modality(value: str, rules: OrderRules) -> str:
    value = value.strip()
    if value in rules.modalities:
        return rules.modalities[value]
    return value.upper() if value.upper() in MODALITIES else ""


def timestamp(segment: Segment | None, n: int, name: str, sequence: int = 1, *, required: bool) -> str:
    """A TS / DTM field, checked (AE 102 when it is not one, 101 when required and empty)."""
    text = segment.value(n).strip() if segment is not None else ""
    if not text:
        if required:
            raise Hl7Error.error(
                REQUIRED_FIELD, f"{name}-{n} is empty", segment=name, sequence=sequence, field=n
            )
        return ""
    return _timestamp(text, name, sequence, n)


def _timestamp(text: str, name: str, sequence: int, n: int) -> str:
    """HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as DICOM DT digits, offset kept."""
    match = _TS.match(text.strip())
    if match is None:
        raise Hl7Error.error(
            DATA_TYPE, f"{name}-{n} is not a date/time", segment=name, sequence=sequence, field=n
        )
    return text.strip()
