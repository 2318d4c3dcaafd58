"""QIDO-RS (PS3.18 10.6): a search URL's query parameters -> a C-FIND identifier, so QIDO and
C-FIND share one plan, one matching and one query (`mapping.dicom.query_keys`).

- Attributes by keyword or by tag (`PatientID=X`, `00100020=X`), matched as C-FIND does.
- `includefield` (repeatable, comma-separated): more attributes to return, or `all`: every key
  of the level and above that we hold.
- `fuzzymatching=true`: a person name without wildcards matches as a prefix (`Doe` finds
  `Doe^John`), case ignored as always (PS3.18 8.3.4.1 leaves the fuzzy algorithm to the origin
  server).
- `limit` / `offset`: a page of the matches.
- Lists: `a\\b`, and for UIDs and codes (which hold no comma) `a,b` too.
- The default attributes of each level are returned (PS3.18 Table 10.6.3-5, -6, -7), with those
  of the levels above when the URL does not name them (`/series` carries the study's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from mapping.dicom.query_keys import KEYS, LEVELS, Level

MAX_LIMIT = 1000  # the most matches one response carries; `limit` above it is lowered to it

STUDY_DEFAULTS = (
    "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
    "TimezoneOffsetFromUTC", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
)  # fmt: skip
SERIES_DEFAULTS = (
    "Modality", "TimezoneOffsetFromUTC", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
)  # fmt: skip
INSTANCE_DEFAULTS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames")
_DEFAULTS: Mapping[Level, tuple[str, ...]] = {
    "STUDY": STUDY_DEFAULTS,
    "SERIES": SERIES_DEFAULTS,
    "IMAGE": INSTANCE_DEFAULTS,
}
_RESERVED = frozenset({"includefield", "fuzzymatching", "limit", "offset"})
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_LIST_VRS = frozenset({"UI", "CS"})  # values without commas: a comma separates a list (PS3.18 8.3.4.1)


class BadQidoQuery(ValueError):
    """A search a QIDO-RS origin server answers with 400 (PS3.18 8.3.4.4.1)."""


@dataclass(frozen=True)
class QidoSearch:
    level: Level
    keys: tuple[tuple[str, tuple[str, ...]], ...]  # (keyword, values), as in a C-FIND identifier
    limit: int
    offset: int


def qido_search(level: Level, pairs: Sequence[tuple[str, str]], *, named: Mapping[str, str]) -> QidoSearch:
    """The identifier a search asks for. `named`: the UIDs the URL path names
    (`/studies/{StudyInstanceUID}/series`), which also decide whose defaults are returned."""
    fuzzy, include_all, limit, offset = False, False, MAX_LIMIT, 0
    include: list[str] = []
    matching: dict[str, str] = {}
    for name, value in pairs:
        if name == "includefield":
            for field in (f.strip() for f in value.split(",") if f.strip()):
                if field == "all":
                    include_all = True
                else:
                    include.append(_keyword(field))
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise BadQidoQuery("fuzzymatching is true or false")
            fuzzy = value == "true"
        elif name in ("limit", "offset"):
            if not value.isdigit():
                raise BadQidoQuery(f"{name} is a number of matches")
            if name == "limit":
                limit = min(int(value), MAX_LIMIT)
            else:
                offset = int(value)
        else:
            keyword = _keyword(name)
            if keyword in matching:
                raise BadQidoQuery(f"{keyword} is given twice")
            matching[keyword] = value
    for keyword, uid in named.items():
        if keyword in matching and matching[keyword] != uid:
            raise BadQidoQuery(f"{keyword} is named by the URL")
        matching[keyword] = uid
    depth = LEVELS.index(level)
    above = {"StudyInstanceUID": "STUDY", "SeriesInstanceUID": "SERIES"}
    named_levels = {above[k] for k in named if k in above}
    returned: list[str] = []
    for lv in ("STUDY", "SERIES", "IMAGE")[:depth]:
        if lv not in named_levels:
            returned += _DEFAULTS[lv]  # type: ignore[index]
    returned += _DEFAULTS[level]
    if include_all:
        returned += [k.keyword for k in KEYS if LEVELS.index(k.level) <= depth]
    keys: dict[str, tuple[str, ...]] = dict.fromkeys([*returned, *include], ())
    for keyword, value in matching.items():
        if fuzzy and dictionary_VR(keyword) == "PN" and value and "*" not in value and "?" not in value:
            value = f"{value}*"  # noqa: PLW2901 - the value as matched
        separators = r"[\\,]" if dictionary_VR(keyword) in _LIST_VRS else r"\\"
        keys[keyword] = tuple(re.split(separators, value))
    return QidoSearch(level, tuple(keys.items()), limit, offset)


def _keyword(name: str) -> str:
    """A keyword or an 8-digit tag -> the keyword; BadQidoQuery when it names no attribute."""
    if name in _RESERVED:
        raise BadQidoQuery(f"{name} cannot be matched")
    if _TAG.match(name):
        keyword = keyword_for_tag(int(name, 16))
    elif "." in name:
        raise BadQidoQuery(f"{name}: sequence attributes cannot be matched here")
    else:
        keyword = name if tag_for_keyword(name) is not None else ""
    if not keyword:
        raise BadQidoQuery(f"{name} is not a DICOM attribute")
    return str(keyword)
