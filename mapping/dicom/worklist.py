"""Modality Worklist (PS3.4 K.6, Table K.6-1): one scheduled procedure step as a worklist item,
a C-FIND request identifier as a query, and the response the query asks for.

The item is built from the order's facts (`mapping.order.facts`) and the patient, with every
attribute of Table K.6-1 the facts hold; its Scheduled Procedure Step Sequence has exactly one
item (one response per step, K.6.1.2.2). Matching (`WorklistQuery.matches`) reads the item
itself, with `mapping.dicom.matching`, the one definition of a match:

- every key of the item definition below is matched, required or optional (IHE RAD-5 wants
  Accession Number and Requested Procedure ID matched); a key we do not hold is ignored for
  matching and returned empty (K.2.2.1.1.2);
- SPS Start Date and Start Time given together, one of them a range, are one datetime range
  (`matching.combined_range`);
- a sequence key with an item of keys matches when one stored item matches them all; an
  empty sequence, or an empty item, matches everything and returns the whole sequence;
- Scheduled Station AE Title is multi-valued: a query for one title finds a step scheduled
  for several;
- a query without a SPS Status sees only the steps still open (`OPEN_STEP_STATES`), as
  dcm4chee hides completed, discontinued and canceled ones.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from pydicom import Dataset, config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag

from mapping.dicom.matching import (
    BadQueryValue,
    Condition,
    DateTimeRange,
    Universal,
    combined_range,
    condition,
    matches,
    matches_datetime,
    trimmed_name,
)
from mapping.dicom.query_keys import BadIdentifier, element_values, response_charset, value_text
from mapping.order.facts import OPEN_STEP_STATES, Coded, EntityId, RequestedProcedure, ScheduledStep

__all__ = ["BadIdentifier", "WorklistPatient", "WorklistQuery", "worklist_item", "worklist_query"]

SPS = "ScheduledProcedureStepSequence"
_START_DATE, _START_TIME = "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime"
_STATION = "ScheduledStationAETitle"
_STATUS = "ScheduledProcedureStepStatus"
_CODE = ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")
_ISSUER = ("LocalNamespaceEntityID", "UniversalEntityID", "UniversalEntityIDType")

# The item definition: the keys of each level ('' the item itself, else the sequence keyword)
KEYS: Mapping[str, tuple[str, ...]] = {
    "": (
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientWeight",
        "PatientSize",
        "PregnancyStatus",
        "MedicalAlerts",
        "Allergies",
        "PatientState",
        "AdmissionID",
        "CurrentPatientLocation",
        "RouteOfAdmissions",
        "StudyInstanceUID",
        "AccessionNumber",
        "IssuerOfAccessionNumberSequence",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "RequestedProcedureCodeSequence",
        "RequestingPhysician",
        "ReferringPhysicianName",
        "RequestedProcedurePriority",
        "PatientTransportArrangements",
        "ReasonForTheRequestedProcedure",
        "ReasonForRequestedProcedureCodeSequence",
        "RequestedProcedureComments",
        "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest",
        SPS,
    ),
    SPS: (
        "ScheduledStationAETitle",
        _START_DATE,
        _START_TIME,
        "Modality",
        "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepDescription",
        "ScheduledProtocolCodeSequence",
        "ScheduledStationName",
        "ScheduledProcedureStepLocation",
        _STATUS,
    ),
    "IssuerOfAccessionNumberSequence": _ISSUER,
    "RequestedProcedureCodeSequence": _CODE,
    "ReasonForRequestedProcedureCodeSequence": _CODE,
    "ScheduledProtocolCodeSequence": _CODE,
}
# keys returned but never matched (K.2.2.1.1.2): weight and size (DS) are numbers, which text
# matching would compare wrongly ("70" is not "70.0")
NOT_MATCHED: frozenset[str] = frozenset({"PatientWeight", "PatientSize"})
_NOT_KEYS = frozenset({"SpecificCharacterSet"})


@dataclass(frozen=True)
class WorklistPatient:
    """The patient of an order as the worklist answers it (the DICOM index's patient)."""

    name: str = ""  # PN, decoded, '=' between component groups
    patient_id: str = ""
    issuer: str = ""  # (0010,0021)
    birth_date: str = ""  # DA
    sex: str = ""


def worklist_item(
    patient: WorklistPatient, procedure: RequestedProcedure, step: ScheduledStep, status: str
) -> Dataset:
    """The worklist item of one scheduled step (Table K.6-1): the attributes the facts hold,
    decoded text (no Specific Character Set: `WorklistQuery.response` names one)."""
    sps = Dataset()
    stations = list(step.station_aets)
    _put(sps, "ScheduledStationAETitle", stations if len(stations) > 1 else "".join(stations))
    _put(sps, _START_DATE, step.start_date)
    _put(sps, _START_TIME, step.start_time)
    _put(sps, "Modality", step.modality)
    _put(sps, "ScheduledPerformingPhysicianName", trimmed_name(step.performing_physician))
    _put(sps, "ScheduledProcedureStepID", step.sps_id)
    _put(sps, "ScheduledProcedureStepDescription", step.description)
    _codes(sps, "ScheduledProtocolCodeSequence", step.protocol)
    _put(sps, "ScheduledStationName", step.station_name)
    _put(sps, "ScheduledProcedureStepLocation", step.location)
    _put(sps, _STATUS, status)

    item = Dataset()
    _put(item, "PatientName", trimmed_name(patient.name))
    _put(item, "PatientID", patient.patient_id)
    _put(item, "IssuerOfPatientID", patient.issuer)
    _put(item, "PatientBirthDate", patient.birth_date)
    _put(item, "PatientSex", patient.sex)
    if procedure.pregnancy_status is not None:
        item.PregnancyStatus = procedure.pregnancy_status
    _put(item, "PatientWeight", procedure.weight)
    _put(item, "PatientSize", procedure.size)
    _put(item, "MedicalAlerts", procedure.medical_alerts)
    allergies = [a[:64] for a in procedure.allergies]
    _put(item, "Allergies", allergies if len(allergies) > 1 else "".join(allergies))
    _put(item, "PatientState", procedure.patient_state)
    _put(item, "AdmissionID", procedure.admission_id)
    _put(item, "CurrentPatientLocation", procedure.current_location)
    _put(item, "RouteOfAdmissions", procedure.route_of_admissions)
    _put(item, "StudyInstanceUID", procedure.study_uid)
    _put(item, "AccessionNumber", procedure.accession.value)
    issuer = _issuer(procedure.accession)
    if issuer is not None:
        item.IssuerOfAccessionNumberSequence = [issuer]
    _put(item, "RequestedProcedureID", procedure.requested_procedure_id)
    _put(item, "RequestedProcedureDescription", procedure.description)
    _codes(item, "RequestedProcedureCodeSequence", (procedure.code,) if procedure.code else ())
    _put(item, "RequestingPhysician", trimmed_name(procedure.requesting_physician.name))
    _put(item, "ReferringPhysicianName", trimmed_name(procedure.referring_physician.name))
    _put(item, "RequestedProcedurePriority", procedure.priority)
    _put(item, "PatientTransportArrangements", procedure.transport)
    _put(item, "ReasonForTheRequestedProcedure", procedure.reason)
    _codes(item, "ReasonForRequestedProcedureCodeSequence", procedure.reason_codes)
    _put(item, "RequestedProcedureComments", procedure.comments)
    _put(item, "PlacerOrderNumberImagingServiceRequest", procedure.placer.value)
    _put(item, "FillerOrderNumberImagingServiceRequest", procedure.filler.value)
    item.ScheduledProcedureStepSequence = [sps]
    return item


def _put(ds: Dataset, keyword: str, value: str | list[str]) -> None:
    """Set a non-empty value by keyword, the tag and VR looked up once per keyword: a third of
    the cost of `setattr`, which looks them up and validates the value every time (validation
    would only warn: a value too long for its VR goes out as the order had it either way)."""
    if value:
        tag, vr = _element(keyword)
        ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))


@cache
def _element(keyword: str) -> tuple[BaseTag, str]:
    tag = Tag(keyword)
    return tag, str(dictionary_VR(tag))


def _codes(ds: Dataset, keyword: str, codes: Sequence[Coded]) -> None:
    items = []
    for code in codes:
        item = Dataset()
        _put(item, "CodeValue", code.code)
        _put(item, "CodingSchemeDesignator", code.scheme)
        _put(item, "CodeMeaning", code.display)
        items.append(item)
    if items:
        setattr(ds, keyword, items)


def _issuer(accession: EntityId) -> Dataset | None:
    """Issuer of Accession Number Sequence (0008,0051), from the EI's assigner, when named."""
    if not accession.value or not (accession.namespace or accession.universal_id):
        return None
    issuer = Dataset()
    _put(issuer, "LocalNamespaceEntityID", accession.namespace)
    _put(issuer, "UniversalEntityID", accession.universal_id)
    if accession.universal_id:
        _put(issuer, "UniversalEntityIDType", accession.universal_id_type)
    return issuer


@dataclass(frozen=True)
class KeyCondition:
    keyword: str
    vr: str
    cond: Condition


@dataclass(frozen=True)
class ItemConditions:
    """What one item must match: its keys, its sequences (one stored item matching each), and
    for the SPS item the combined start range."""

    keys: tuple[KeyCondition, ...] = ()
    sequences: tuple[tuple[str, ItemConditions], ...] = ()
    start: DateTimeRange | None = None

    @property
    def universal(self) -> bool:
        return not self.keys and self.start is None and all(c.universal for _, c in self.sequences)

    def of(self, keyword: str) -> Condition:
        for key in self.keys:
            if key.keyword == keyword:
                return key.cond
        return Universal()

    def sequence(self, keyword: str) -> ItemConditions:
        return next((conds for kw, conds in self.sequences if kw == keyword), ItemConditions())


@dataclass(frozen=True)
class Requested:
    """One key of the request, to return: its tag and VR; for a sequence with keys in its
    item, those keys (None: the whole sequence)."""

    tag: int
    vr: str
    children: tuple[Requested, ...] | None = None


@dataclass(frozen=True)
class WorklistQuery:
    conditions: ItemConditions
    requested: tuple[Requested, ...]
    status_asked: bool  # a SPS Status key with a value: else only open steps match

    @property
    def sps(self) -> ItemConditions:
        return self.conditions.sequence(SPS)

    @property
    def names_no_station(self) -> bool:
        """Whether the query leaves Scheduled Station AE Title universal (absent or empty)."""
        return isinstance(self.sps.of(_STATION), Universal)

    def matches(self, item: Dataset) -> bool:
        """Whether the worklist item answers the query (PS3.4 K.2.2.1, C.2.2.2)."""
        if not self.status_asked:
            steps = item.get(SPS) or []
            if not any(str(s.get(_STATUS, "")) in OPEN_STEP_STATES for s in steps):
                return False
        return _item_matches(self.conditions, item)

    def response(self, item: Dataset) -> Dataset:
        """The pending response's identifier: the keys asked, with the item's values (empty when
        it holds none), sequences filtered the same way; Specific Character Set when a value is
        not ASCII (the values are decoded text: UTF-8 then). The response shares the item's
        plain elements (an item is never changed once built: the worklist remembers it) and
        holds sequences of its own."""
        out = _filtered(item, self.requested)
        charset = response_charset("", list(_texts(out)))
        if charset:
            out.SpecificCharacterSet = charset
        return out


def worklist_query(identifier: Dataset) -> WorklistQuery:
    """The query a MWL C-FIND identifier asks (PS3.4 K.6.1.2); `BadIdentifier` for a value its
    VR cannot take (a malformed date, a wildcard in a UID)."""
    conditions, requested = _read_item(identifier, "")
    status = conditions.sequence(SPS).of(_STATUS)
    return WorklistQuery(conditions, requested, status_asked=not isinstance(status, Universal))


def _read_item(ds: Dataset, level: str) -> tuple[ItemConditions, tuple[Requested, ...]]:
    known = KEYS.get(level, ())
    keys: list[KeyCondition] = []
    sequences: list[tuple[str, ItemConditions]] = []
    requested: list[Requested] = []
    for element in ds:
        if element.tag.group in (0x0000, 0x0002) or element.tag.element == 0 or element.keyword in _NOT_KEYS:
            continue
        keyword = element.keyword
        if element.VR == "SQ":
            items = list(element.value or [])
            if items and len(items[0]):
                inner, children = _read_item(items[0], keyword)
                requested.append(Requested(int(element.tag), "SQ", children))
                if keyword in known:
                    sequences.append((keyword, inner))
            else:
                requested.append(Requested(int(element.tag), "SQ", None))
            continue
        requested.append(Requested(int(element.tag), str(element.VR)))
        if keyword not in known or keyword in NOT_MATCHED:
            continue
        vr = str(dictionary_VR(keyword))
        try:
            cond = condition(vr, element_values(element))
        except BadQueryValue as exc:
            raise BadIdentifier(f"{keyword}: {exc}") from exc
        if not isinstance(cond, Universal):
            keys.append(KeyCondition(keyword, vr, cond))
    start = None
    if level == SPS:
        given = {k.keyword: k.cond for k in keys}
        start = combined_range(given.get(_START_DATE, Universal()), given.get(_START_TIME, Universal()))
        if start is not None:
            keys = [k for k in keys if k.keyword not in (_START_DATE, _START_TIME)]
    return ItemConditions(tuple(keys), tuple(sequences), start), tuple(requested)


def _item_matches(conditions: ItemConditions, item: Dataset) -> bool:
    for key in conditions.keys:
        stored = _stored(item.get(key.keyword))
        if not matches(key.cond, key.vr, stored):
            return False
    if conditions.start is not None:
        date, time = str(item.get(_START_DATE, "") or ""), str(item.get(_START_TIME, "") or "")
        if not matches_datetime(conditions.start, date, time):
            return False
    for keyword, inner in conditions.sequences:
        if inner.universal:
            continue
        if not any(_item_matches(inner, stored_item) for stored_item in item.get(keyword) or []):
            return False
    return True


def _stored(value: object) -> str | list[str]:
    if isinstance(value, MultiValue | list):
        return [value_text(v) for v in value]
    return value_text(value)


def _filtered(item: Dataset, requested: Sequence[Requested]) -> Dataset:
    out = Dataset()
    for key in requested:
        element = item.get(key.tag)
        if element is None:
            out.add_new(key.tag, key.vr if key.vr != "UN" else _vr(key.tag), [] if key.vr == "SQ" else None)
        elif element.VR == "SQ" and key.children is not None:
            children = key.children
            out.add_new(key.tag, "SQ", DicomSequence([_filtered(i, children) for i in element.value]))
        elif element.VR == "SQ":  # the whole sequence: a copy, so that the item stays as built
            out.add(copy.deepcopy(element))
        else:
            out.add(element)
    return out


def _vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _texts(ds: Dataset) -> Iterator[str]:
    for element in ds:
        if element.VR == "SQ":
            for item in element.value or []:
                yield from _texts(item)
        elif element.VR in ("PN", "LO", "LT", "SH", "ST", "UC", "UT") and element.value:
            values = element.value if isinstance(element.value, MultiValue | list) else [element.value]
            yield from (str(v) for v in values)


def keyword_rows() -> Iterator[tuple[str, str, str]]:
    """(keyword, VR, where) of every key of the item definition, for the conformance statement."""
    for level, keywords in KEYS.items():
        for keyword in keywords:
            yield keyword, str(dictionary_VR(keyword)), level
