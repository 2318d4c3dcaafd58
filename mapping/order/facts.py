"""An imaging order, whatever protocol brought it: requested procedures and their scheduled
procedure steps (the DICOM MWL information model, PS3.4 K.6; IHE RAD TF-2x Appendix B).

One requested procedure (an OBR, with its ORC) becomes one FHIR ServiceRequest; each scheduled
step (the ORM's one, or an OMI's IPC segments) becomes one worklist entry. Values are kept in
their DICOM forms (PN with '^' in DICOM component order, DA, TM) so the worklist answers them
as they are; FHIR mapping reads the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, is_dataclass
from typing import Any, Literal

from mapping.dicom.facts import PatientFacts

# DICOM Scheduled Procedure Step Status (0040,0020): the defined terms, plus the final states the
# worklist hides by default (as dcm4chee does)
StepStatus = Literal["SCHEDULED", "ARRIVED", "READY", "STARTED", "COMPLETED", "DISCONTINUED", "CANCELED"]
OPEN_STEP_STATES: tuple[StepStatus, ...] = ("SCHEDULED", "ARRIVED", "READY", "STARTED")
# FHIR ServiceRequest.status
RequestStatus = Literal["draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"]


@dataclass(frozen=True)
class EntityId:
    """HL7 EI (entity identifier) / DICOM issuer: a value and who assigned it."""

    value: str
    namespace: str = ""  # EI-2 / (0040,0031) Local Namespace Entity ID
    universal_id: str = ""  # EI-3 / (0040,0032)
    universal_id_type: str = ""  # EI-4 / (0040,0033)

    def same_as(self, other: EntityId) -> bool:
        """Same value, and the same assigner where both name one."""
        if not self.value or self.value != other.value:
            return False
        if self.namespace and other.namespace and self.namespace != other.namespace:
            return False
        return not (self.universal_id and other.universal_id and self.universal_id != other.universal_id)


@dataclass(frozen=True)
class Coded:
    """A coded value (HL7 CE/CWE; DICOM code sequence item): scheme as sent (HL7 table 0396
    or a DICOM coding scheme designator)."""

    code: str
    display: str = ""
    scheme: str = ""


@dataclass(frozen=True)
class Person:
    """A provider (HL7 XCN): id, and the name in DICOM PN form."""

    id: str = ""
    name: str = ""


@dataclass(frozen=True)
class ScheduledStep:
    sps_id: str  # (0040,0009)
    modality: str  # (0008,0060)
    start_date: str  # (0040,0002) DA
    start_time: str  # (0040,0003) TM
    description: str = ""  # (0040,0007)
    protocol: tuple[Coded, ...] = ()  # (0040,0008)
    station_aets: tuple[str, ...] = ()  # (0040,0001), several when the step may run on several
    station_name: str = ""  # (0040,0010)
    location: str = ""  # (0040,0011)
    performing_physician: str = ""  # (0040,0006) PN


@dataclass(frozen=True)
class RequestedProcedure:
    control: str  # ORC-1 order control (HL7 table 0119)
    order_status: str  # ORC-5 (HL7 table 0038), '' when absent
    placer: EntityId  # ORC-2 / OBR-2, (0040,2016)
    filler: EntityId  # ORC-3 / OBR-3, (0040,2017)
    accession: EntityId  # OBR-18 (ORM) or IPC-1 (OMI), (0008,0050) + (0008,0051)
    requested_procedure_id: str = ""  # OBR-19 / IPC-2, (0040,1001)
    study_uid: str = ""  # ZDS-1 / IPC-3, (0020,000D); '' until generated
    code: Coded | None = None  # OBR-44, else OBR-4; (0032,1064)
    description: str = ""  # (0032,1060)
    priority: str = ""  # (0040,1003): STAT, HIGH, ROUTINE, MEDIUM, LOW
    requesting_physician: Person = field(default_factory=Person)  # OBR-16, (0032,1032)
    referring_physician: Person = field(default_factory=Person)  # PV1-8, (0008,0090)
    reason: str = ""  # OBR-31 text, (0040,1002)
    reason_codes: tuple[Coded, ...] = ()  # OBR-31, (0040,100A)
    medical_alerts: str = ""  # OBR-13, (0010,2000)
    patient_state: str = ""  # OBR-12, (0038,0500)
    pregnancy_status: int | None = None  # PV1-15, (0010,21C0): 1 not, 2 possibly, 3 definitely, 4 unknown
    admission_id: str = ""  # PV1-19, else PID-18, (0038,0010)
    allergies: tuple[str, ...] = ()  # AL1-3, (0010,2110)
    weight: str = ""  # OBX body weight in kg, DS, (0010,1030)
    size: str = ""  # OBX body height in m, DS, (0010,1020)
    current_location: str = ""  # PV1-3, (0038,0300)
    route_of_admissions: str = ""  # PV1-2, (0038,0016)
    transport: str = ""  # OBR-30, (0040,1004)
    comments: str = ""  # NTE after OBR, (0040,1400)
    ordered_at: str = ""  # ORC-9 as DICOM DT (YYYYMMDDHHMMSS[&ZZXX])
    # PID-3.4.1: the worklist answers it as (0010,0021) Issuer of Patient ID, so that the images
    # a modality makes from the entry resolve to the same patient as the order
    patient_issuer: str = ""
    steps: tuple[ScheduledStep, ...] = ()

    def keys(self) -> dict[str, Any]:
        """What identifies the order for a later message: placer, filler, accession."""
        return {"placer": self.placer, "filler": self.filler, "accession": self.accession}


@dataclass(frozen=True)
class OrderMessage:
    """What an ORM^O01 / OMI^O23 says."""

    patient: PatientFacts
    patient_issuer: str  # PID-3.4.1, the local issuer the worklist answers as (0010,0021)
    other_patient_ids: tuple[EntityId, ...]  # PID-3's other repetitions, (0010,1002)
    procedures: tuple[RequestedProcedure, ...]
    charset: str  # DICOM Specific Character Set of the values ('' for ASCII)


def procedure_json(procedure: RequestedProcedure) -> dict[str, Any]:
    """The procedure's facts without its steps, for `requested_procedure.facts`."""
    return {name: _plain(value) for name, value in vars(procedure).items() if name != "steps"}


def step_json(step: ScheduledStep) -> dict[str, Any]:
    out: dict[str, Any] = _plain(step)
    return out


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` for these facts (dataclasses of strings, numbers and tuples of them),
    at a third of its cost: it deep-copies every leaf, on the path each order's ACK waits for."""
    if isinstance(value, str | int | None):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if is_dataclass(value):
        return {name: _plain(item) for name, item in vars(value).items()}
    return value


def procedure_from_json(data: dict[str, Any], steps: tuple[ScheduledStep, ...] = ()) -> RequestedProcedure:
    code = data.get("code")
    return RequestedProcedure(
        control=data["control"],
        order_status=data["order_status"],
        placer=EntityId(**data["placer"]),
        filler=EntityId(**data["filler"]),
        accession=EntityId(**data["accession"]),
        requested_procedure_id=data["requested_procedure_id"],
        study_uid=data["study_uid"],
        code=Coded(**code) if code else None,
        description=data["description"],
        priority=data["priority"],
        requesting_physician=Person(**data["requesting_physician"]),
        referring_physician=Person(**data["referring_physician"]),
        reason=data["reason"],
        reason_codes=tuple(Coded(**c) for c in data["reason_codes"]),
        medical_alerts=data["medical_alerts"],
        patient_state=data["patient_state"],
        pregnancy_status=data["pregnancy_status"],
        admission_id=data["admission_id"],
        allergies=tuple(data.get("allergies", ())),
        weight=data.get("weight", ""),
        size=data.get("size", ""),
        current_location=data.get("current_location", ""),
        route_of_admissions=data.get("route_of_admissions", ""),
        transport=data["transport"],
        comments=data["comments"],
        ordered_at=data["ordered_at"],
        patient_issuer=data.get("patient_issuer", ""),
        steps=steps,
    )


def step_from_json(data: dict[str, Any]) -> ScheduledStep:
    return ScheduledStep(
        **{k: v for k, v in data.items() if k not in ("protocol", "station_aets")},
        protocol=tuple(Coded(**c) for c in data["protocol"]),
        station_aets=tuple(data["station_aets"]),
    )
