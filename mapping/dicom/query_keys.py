"""The C-FIND keys we match and return, per information model and level (PS3.4 C.6.1, C.6.2),
and the request identifier -> a plan -> response identifiers.

Each key names a `field` of the index's match records (`storage.dicom_index.query`). Keys of
the level asked and above are matched (the unique keys of the levels above need not be single
values: relational-style queries are answered, not refused); keys we do not hold, and keys of
lower levels, come back empty, as PS3.4 C.2.2.1.1 allows for optional keys.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from pydicom import Dataset
from pydicom.charset import convert_encodings, decode_bytes, encode_string
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from mapping.dicom.matching import BadQueryValue, Condition, Universal, condition, trimmed_name

Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
Model = Literal["patient", "study"]
LEVELS: tuple[Level, ...] = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MODEL_LEVELS: Mapping[Model, tuple[Level, ...]] = {
    "patient": ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    "study": ("STUDY", "SERIES", "IMAGE"),
}
UNIQUE: Mapping[Level, str] = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
UTF8 = "ISO_IR 192"


@dataclass(frozen=True)
class Key:
    keyword: str
    level: Level  # PATIENT keys are STUDY keys in the Study Root model
    field: str  # in the index's match record
    matchable: bool = True  # False: returned, never matched (the counts)

    @property
    def vr(self) -> str:
        return vr_of(self.keyword)


@lru_cache(maxsize=512)
def vr_of(keyword: str) -> str:
    """The data dictionary's VR of `keyword` (looked up once: every match of every query asks)."""
    return str(dictionary_VR(keyword))


KEYS: tuple[Key, ...] = (
    Key("PatientName", "PATIENT", "patient_name"),
    Key("PatientID", "PATIENT", "patient_id"),
    Key("PatientBirthDate", "PATIENT", "birth_date"),
    Key("PatientSex", "PATIENT", "sex"),
    Key("NumberOfPatientRelatedStudies", "PATIENT", "patient_studies", matchable=False),
    Key("NumberOfPatientRelatedSeries", "PATIENT", "patient_series", matchable=False),
    Key("NumberOfPatientRelatedInstances", "PATIENT", "patient_instances", matchable=False),
    Key("StudyInstanceUID", "STUDY", "study_uid"),
    Key("StudyDate", "STUDY", "study_date"),
    Key("StudyTime", "STUDY", "study_time"),
    Key("AccessionNumber", "STUDY", "accession"),
    Key("StudyID", "STUDY", "study_id"),
    Key("StudyDescription", "STUDY", "study_description"),
    Key("ReferringPhysicianName", "STUDY", "referring_physician"),
    Key("ModalitiesInStudy", "STUDY", "modalities"),
    Key("SOPClassesInStudy", "STUDY", "sop_classes"),
    Key("TimezoneOffsetFromUTC", "STUDY", "tz_offset"),
    Key("NumberOfStudyRelatedSeries", "STUDY", "study_series", matchable=False),
    Key("NumberOfStudyRelatedInstances", "STUDY", "study_instances", matchable=False),
    Key("SeriesInstanceUID", "SERIES", "series_uid"),
    Key("Modality", "SERIES", "modality"),
    Key("SeriesNumber", "SERIES", "series_number"),
    Key("SeriesDescription", "SERIES", "series_description"),
    Key("BodyPartExamined", "SERIES", "body_part"),
    Key("Laterality", "SERIES", "laterality"),
    Key("SeriesDate", "SERIES", "series_date"),
    Key("SeriesTime", "SERIES", "series_time"),
    Key("PerformingPhysicianName", "SERIES", "performing_physician"),
    Key("NumberOfSeriesRelatedInstances", "SERIES", "series_instances", matchable=False),
    Key("SOPInstanceUID", "IMAGE", "sop_uid"),
    Key("SOPClassUID", "IMAGE", "sop_class_uid"),
    Key("InstanceNumber", "IMAGE", "instance_number"),
    Key("Rows", "IMAGE", "rows"),
    Key("Columns", "IMAGE", "columns"),
    Key("NumberOfFrames", "IMAGE", "number_of_frames"),
)
_BY_KEYWORD = {k.keyword: k for k in KEYS}
_BINARY_INTEGERS = frozenset({"US", "UL", "SS", "SL"})
MULTI_VALUED = frozenset({"modalities", "sop_classes"})  # '\\'-joined in match records
_NOT_KEYS = frozenset({"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle"})


def key_of(keyword: str) -> Key | None:
    """The key of that keyword, when we hold one."""
    return _BY_KEYWORD.get(keyword)


def held_field(keyword: str, level: Level) -> str | None:
    """The match record's field that holds `keyword` in an answer at `level`; None for keys we do
    not hold and keys of the levels below (returned empty, PS3.4 C.2.2.1.1)."""
    key = _BY_KEYWORD.get(keyword)
    return key.field if key is not None and LEVELS.index(key.level) <= LEVELS.index(level) else None


class BadIdentifier(ValueError):
    """A C-FIND identifier this SCP cannot answer (PS3.4 C.4.1.1.4: 0xA900 or 0xC000)."""


@dataclass(frozen=True)
class FindPlan:
    model: Model
    level: Level
    conditions: Mapping[str, tuple[Key, Condition]]  # field -> what it must match
    returned: tuple[str, ...]  # keywords of the response identifier, in the request's order
    fields: frozenset[str]  # what the match records must carry


def plan_from_identifier(model: Model, identifier: Dataset) -> FindPlan:
    """What a C-FIND request identifier asks (PS3.4 C.4.1.2.1); its records also carry `charset`,
    the Specific Character Set the matches were stored in (DICOM JSON needs none)."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    keys = [
        (element.keyword, [] if element.VR == "SQ" else element_values(element))
        for element in identifier
        if element.keyword and element.keyword not in _NOT_KEYS and element.tag.group != 0x0002
    ]
    plan = find_plan(model, level, keys)
    return replace(plan, fields=plan.fields | {"charset"})


def find_plan(model: Model, level: str, keys: Sequence[tuple[str, Sequence[str]]]) -> FindPlan:
    """The plan of a query at `level` with `keys` (keyword, values; no values: return only):
    the conditions of the keys we hold at that level and above, and the keys to return."""
    if level not in MODEL_LEVELS[model]:
        raise BadIdentifier(f"QueryRetrieveLevel {level or '(none)'} is not a level of this model")
    depth = LEVELS.index(level)
    conditions: dict[str, tuple[Key, Condition]] = {}
    returned: list[str] = []
    for keyword, values in keys:
        if keyword not in returned:
            returned.append(keyword)
        key = _BY_KEYWORD.get(keyword)
        if key is None or LEVELS.index(key.level) > depth:
            continue
        try:
            cond = condition(key.vr, values) if key.matchable else Universal()
        except BadQueryValue as exc:
            raise BadIdentifier(f"{keyword}: {exc}") from exc
        if not isinstance(cond, Universal):
            conditions[key.field] = (key, cond)
    for lv in MODEL_LEVELS[model][: MODEL_LEVELS[model].index(level) + 1]:
        if UNIQUE[lv] not in returned:  # the unique keys of this level and above (C.4.1.2.2)
            returned.append(UNIQUE[lv])
    fields = {field for kw in returned if (field := held_field(kw, level)) is not None}
    return FindPlan(model, level, conditions, tuple(returned), frozenset(fields | set(conditions)))


def element_values(element: DataElement) -> list[str]:
    """An element's values as text (PN as its string, bytes as ASCII); none when empty."""
    value = element.value
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [value_text(v) for v in value]
    return [value_text(value)]


def value_text(value: object) -> str:
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return "" if value is None else str(value)


def response_identifier(
    plan: FindPlan, record: Mapping[str, object], *, stored_charset: str, retrieve_ae: str | None
) -> Dataset:
    """One pending response's identifier (PS3.4 C.4.1.1.3.2): every requested key, with the
    value we hold at this level or above, or empty; SpecificCharacterSet names how the text
    is encoded: as the instances were stored when that can hold every value, else UTF-8."""
    values = response_values(plan, record)
    ds = Dataset()
    charset = response_charset(stored_charset, values.values())
    if charset:
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds.QueryRetrieveLevel = plan.level
    if retrieve_ae is not None:
        ds.RetrieveAETitle = retrieve_ae
    for keyword, text in values.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            continue
        vr = str(dictionary_VR(keyword))
        if vr == "SQ":
            ds.add_new(tag, vr, [])
        elif not text:
            ds.add_new(tag, vr, None)
        elif keyword in ("ModalitiesInStudy", "SOPClassesInStudy"):
            ds.add_new(tag, vr, text.split("\\"))
        elif vr in _BINARY_INTEGERS:  # Rows, Columns: a number, not its text
            ds.add_new(tag, vr, int(text) if text.isdigit() else None)
        else:
            ds.add_new(tag, vr, text)
    return ds


def response_values(plan: FindPlan, record: Mapping[str, object]) -> dict[str, str]:
    """Each returned keyword's value as text: what we hold at the plan's level or above, else ''
    (multi-valued ones '\\'-joined, person names without trailing empty components)."""
    values: dict[str, str] = {}
    for keyword in plan.returned:
        field = held_field(keyword, plan.level)
        value = None if field is None else record.get(field)
        text = "" if value is None else str(value)
        values[keyword] = trimmed_name(text) if field is not None and vr_of(keyword) == "PN" else text
    return values


def response_charset(stored: str, values: Iterable[str]) -> str:
    """'' when every value is ASCII; else the stored character set when it encodes every value
    and decodes back to the same text (ISO 2022 IR 87 for kanji, ISO_IR 100 for Latin-1), else
    UTF-8."""
    texts = [v for v in values if v and not v.isascii()]
    if not texts:
        return ""
    if stored and _encodes(stored.split("\\"), texts):
        return stored
    return UTF8


def _encodes(charsets: Sequence[str], texts: Sequence[str]) -> bool:
    """Whether pydicom writes every text in `charsets` without loss (it replaces what a
    character set cannot hold, with a warning: the round trip tells)."""
    delimiters = {ord("^"), ord("=")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encodings = convert_encodings(list(charsets))
            for text in texts:
                for group in text.split("="):
                    if decode_bytes(encode_string(group, encodings), encodings, delimiters) != group:
                        return False
    except (LookupError, ValueError, UnicodeError):
        return False
    return True


def retrieve_plan(model: Model, identifier: Dataset) -> FindPlan:
    """The instances a C-GET or C-MOVE identifier names (PS3.4 C.4.2.2.1, C.4.3.2.1): the unique
    keys of its level and above, each a single value or a list; other keys are ignored. The plan
    is at IMAGE level, so its records are the instances to send."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level not in MODEL_LEVELS[model]:
        raise BadIdentifier(f"QueryRetrieveLevel {level or '(none)'} is not a level of this model")
    levels = MODEL_LEVELS[model][: MODEL_LEVELS[model].index(level) + 1]
    keys: list[tuple[str, list[str]]] = []
    for lv in levels:
        keyword = UNIQUE[lv]
        element = identifier.data_element(keyword) if keyword in identifier else None
        values = [v for v in element_values(element) if v.strip()] if element is not None else []
        if any("*" in v or "?" in v for v in values):
            raise BadIdentifier(f"{keyword}: a retrieve names its instances, without wildcards")
        if values:
            keys.append((keyword, values))
    if not any(keyword == UNIQUE[level] for keyword, _ in keys):
        raise BadIdentifier(f"a {level} retrieve needs {UNIQUE[level]}")
    keys += [("SOPInstanceUID", []), ("SOPClassUID", [])]
    return find_plan(model, "IMAGE", keys)
