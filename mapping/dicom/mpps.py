"""Modality Performed Procedure Step (PS3.4 F.7; PS3.3 C.4.13-C.4.16): what an N-CREATE or N-SET
must carry, how an N-SET changes the stored instance, and the facts the rest of the archive uses
(the scheduled steps it names, its times, codes and status).

Pure: datasets in, facts or a `BadPps` out. The refusal kinds follow PS3.7 C: an attribute an
N-CREATE must have is absent ("missing", 0x0120), an attribute present without the value it
must have ("no value", 0x0121), a value outside the defined terms ("invalid", 0x0106).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

from pydicom import Dataset
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from mapping.dicom.dates import parse_da, valid_tm
from mapping.dicom.facts import Code, coding_system
from mapping.dicom.query_keys import response_charset

PpsStatus = Literal["IN PROGRESS", "COMPLETED", "DISCONTINUED"]
PPS_STATES: tuple[PpsStatus, ...] = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")
FINAL_STATES: tuple[PpsStatus, ...] = ("COMPLETED", "DISCONTINUED")
Refusal = Literal["missing", "no value", "invalid"]

# Type 1 on N-CREATE (PS3.4 Table F.7.2-1): the ones we rely on
_CREATE_REQUIRED = (
    "PerformedProcedureStepStatus",
    "ScheduledStepAttributesSequence",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)
# "Not allowed" in an N-SET (Table F.7.2-1): the patient, the scheduled steps it was created for and
# its identity; a modality that sends them anyway keeps what its N-CREATE said
_NOT_SETTABLE = frozenset(
    {
        "SOPClassUID",
        "SOPInstanceUID",
        "ScheduledStepAttributesSequence",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "PatientBirthDate",
        "PatientSex",
        "ReferencedPatientSequence",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedStationAETitle",
        "PerformedProcedureStepID",
        "Modality",
        "StudyID",
    }
)


class BadPps(Exception):
    """A data set the MPPS SCP refuses: `kind` picks the DIMSE status, `keyword` the attribute."""

    def __init__(self, kind: Refusal, keyword: str, text: str) -> None:
        super().__init__(text)
        self.kind, self.keyword, self.text = kind, keyword, text


@dataclass(frozen=True)
class StepRef:
    """One item of the Scheduled Step Attributes Sequence (0040,0270): the worklist entry this
    performed step carries out; an item without SPS ID is IHE's unscheduled case."""

    sps_id: str  # (0040,0009)
    requested_procedure_id: str  # (0040,1001)
    accession: str  # (0008,0050)
    study_uid: str  # (0020,000D)


@dataclass(frozen=True)
class PerformedFacts:
    status: PpsStatus  # (0040,0252)
    steps: tuple[StepRef, ...]
    study_uid: str  # the first item's Study Instance UID
    start_date: str  # (0040,0244) DA
    start_time: str  # (0040,0245) TM
    end_date: str  # (0040,0250) DA, '' while in progress
    end_time: str  # (0040,0251) TM
    tz_offset: str  # (0008,0201)
    description: str  # (0040,0254)
    procedure_codes: tuple[Code, ...]  # (0008,1032)
    series_count: int  # items of the Performed Series Sequence (0040,0340)
    pps_id: str  # (0040,0253)
    modality: str  # (0008,0060)
    station_ae: str = ""  # (0040,0241) Performed Station AE Title
    station_name: str = ""  # (0040,0242) Performed Station Name
    location: str = ""  # (0040,0243) Performed Location
    # (0008,1050) Performing Physician's Name and (0008,1070) Operators' Name of the performed
    # series, in DICOM PN form, each once
    physicians: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    reasons: tuple[Code, ...] = ()  # (0040,1012) Reason For Performed Procedure Code Sequence
    discontinued_because: tuple[Code, ...] = ()  # (0040,0281) Discontinuation Reason Code Sequence
    comments: str = ""  # (0040,0280) Comments on the Performed Procedure Step


def check_create(ds: Dataset) -> None:
    """An N-CREATE's attribute list (PS3.4 F.7.2.1): the Type 1 attributes we rely on present
    with a value, the status IN PROGRESS, each scheduled step item with its Study Instance UID."""
    for keyword in _CREATE_REQUIRED:
        if keyword not in ds:
            raise BadPps("missing", keyword, f"{keyword} is missing")
        if _empty(ds[keyword].value):
            raise BadPps("no value", keyword, f"{keyword} has no value")
    status = _text(ds, "PerformedProcedureStepStatus")
    if status != "IN PROGRESS":
        raise BadPps("invalid", "PerformedProcedureStepStatus", "a new PPS must be IN PROGRESS")
    _check_moments(ds)
    for item in ds.ScheduledStepAttributesSequence:
        if not _text(item, "StudyInstanceUID"):
            raise BadPps("no value", "StudyInstanceUID", "a scheduled step item lacks its Study UID")


def apply_set(stored: Dataset, modification: Dataset) -> Dataset:
    """The instance after an N-SET (PS3.4 F.7.2.2): the modification list's attributes replace
    the stored ones, except those an N-SET may not change. Refuses a status outside the defined
    terms, and a final status without the end date and time (its Final State requirements)."""
    if "PerformedProcedureStepStatus" in modification:
        status = _text(modification, "PerformedProcedureStepStatus")
        if status not in PPS_STATES:
            raise BadPps(
                "invalid",
                "PerformedProcedureStepStatus",
                "status must be IN PROGRESS, COMPLETED or DISCONTINUED",
            )
    merged = Dataset()
    merged.update(stored)
    for element in modification:
        if element.keyword and element.keyword not in _NOT_SETTABLE:
            merged[element.tag] = element
    if _text(merged, "PerformedProcedureStepStatus") in FINAL_STATES:
        for keyword in ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"):
            if not _text(merged, keyword):
                raise BadPps("no value", keyword, f"a final status needs {keyword}")
    _check_moments(merged)
    return merged


def _check_moments(ds: Dataset) -> None:
    """Start and end, where given, are a DA and a TM (0x0106 otherwise: a value its VR cannot take)."""
    for date_key, time_key in (
        ("PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"),
        ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"),
    ):
        if _text(ds, date_key) and parse_da(_text(ds, date_key)) is None:
            raise BadPps("invalid", date_key, f"{date_key} is not a date (YYYYMMDD)")
        if _text(ds, time_key) and not valid_tm(_text(ds, time_key)):
            raise BadPps("invalid", time_key, f"{time_key} is not a time (HHMMSS)")


def status_of(ds: Dataset) -> PpsStatus:
    status = _text(ds, "PerformedProcedureStepStatus")
    for known in PPS_STATES:
        if status == known:
            return known
    return "IN PROGRESS"


def performed_facts(ds: Dataset) -> PerformedFacts:
    """The facts of a checked instance (`check_create`, `apply_set`)."""
    steps = tuple(
        StepRef(
            sps_id=_text(item, "ScheduledProcedureStepID"),
            requested_procedure_id=_text(item, "RequestedProcedureID"),
            accession=_text(item, "AccessionNumber"),
            study_uid=_text(item, "StudyInstanceUID"),
        )
        for item in ds.get("ScheduledStepAttributesSequence") or ()
    )
    return PerformedFacts(
        status=status_of(ds),
        steps=steps,
        study_uid=steps[0].study_uid if steps else "",
        start_date=_text(ds, "PerformedProcedureStepStartDate"),
        start_time=_text(ds, "PerformedProcedureStepStartTime"),
        end_date=_text(ds, "PerformedProcedureStepEndDate"),
        end_time=_text(ds, "PerformedProcedureStepEndTime"),
        tz_offset=_text(ds, "TimezoneOffsetFromUTC"),
        description=_text(ds, "PerformedProcedureStepDescription"),
        procedure_codes=_codes(ds, "ProcedureCodeSequence"),
        series_count=len(ds.get("PerformedSeriesSequence") or ()),
        pps_id=_text(ds, "PerformedProcedureStepID"),
        modality=_text(ds, "Modality"),
        station_ae=_text(ds, "PerformedStationAETitle"),
        station_name=_text(ds, "PerformedStationName"),
        location=_text(ds, "PerformedLocation"),
        physicians=_names(ds, "PerformingPhysicianName"),
        operators=_names(ds, "OperatorsName"),
        reasons=_codes(ds, "ReasonForPerformedProcedureCodeSequence"),
        discontinued_because=_codes(ds, "PerformedProcedureStepDiscontinuationReasonCodeSequence"),
        comments=_text(ds, "CommentsOnThePerformedProcedureStep"),
    )


def _names(ds: Dataset, keyword: str) -> tuple[str, ...]:
    """Every person named by `keyword` in the Performed Series Sequence (PN, multi-valued), once."""
    out: dict[str, None] = {}
    for series in ds.get("PerformedSeriesSequence") or ():
        value = series.get(keyword)
        for name in value if isinstance(value, list | MultiValue) else [value] if value else []:
            text = str(name).strip()
            if text:
                out.setdefault(text, None)
    return tuple(out)


def _codes(ds: Dataset, keyword: str) -> tuple[Code, ...]:
    out = []
    for item in ds.get(keyword) or ():
        value = _text(item, "CodeValue") or _text(item, "LongCodeValue") or _text(item, "URNCodeValue")
        if value:
            system = coding_system(_text(item, "CodingSchemeDesignator"))
            out.append(Code(system=system, code=value, display=_text(item, "CodeMeaning") or None))
    return tuple(out)


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str | bytes):
        return not value.strip()
    try:
        return len(value) == 0  # type: ignore[arg-type]
    except TypeError:
        return False


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    return str(value).strip()


def n_get_reply(stored: Dataset, tags: list[BaseTag]) -> tuple[Dataset, list[BaseTag]]:
    """N-GET (PS3.7 10.1.2): the attributes `tags` name (all of `stored` when none), empty
    where the step holds none, with the Specific Character Set their text needs; and the tags
    that name no attribute we know (private, group length, unknown)."""
    if not tags:
        reply = copy.copy(stored)
    else:
        reply, unknown = Dataset(), []
        for tag in tags:
            if tag in stored:
                reply.add(stored[tag])
            elif tag.is_private or tag.element == 0 or not dictionary_has_tag(tag):
                unknown.append(tag)
            else:
                reply.add_new(tag, dictionary_VR(tag), None)
    texts = [str(e.value) for e in reply.iterall() if e.VR in _TEXT_VRS and e.value]
    charset = response_charset(str(stored.get("SpecificCharacterSet", "") or ""), texts)
    if charset:
        reply.SpecificCharacterSet = charset
    elif "SpecificCharacterSet" in reply:
        del reply.SpecificCharacterSet
    return reply, [] if not tags else unknown


_TEXT_VRS = frozenset({"PN", "LO", "LT", "SH", "ST", "UC", "UT"})
