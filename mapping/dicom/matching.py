"""C-FIND attribute matching (PS3.4 C.2.2.2): a query key's value -> a condition, and whether a
stored value satisfies it.

This is the one definition of what matches: the index query (`storage.dicom_index.query`) only
narrows the rows with SQL that never drops a match, and every row is then checked here, so
SQLite and PostgreSQL answer the same (SQLite's LIKE ignores ASCII case, PostgreSQL's does not).

- Universal matching (C.2.2.2.3): an empty value, or `*` alone.
- Single value matching (C.2.2.2.1): exact; person names ignore case (C.2.2.2.1 lets the SCP
  choose: a name typed in capitals at the modality must still be found) and trailing empty
  components ('Doe^John^^' is 'Doe^John').
- Wildcard matching (C.2.2.2.4): `*` any run, `?` one character; not for dates, times or UIDs.
- Range matching (C.2.2.2.5): DA and TM `low-high`, `low-`, `-high`, inclusive. A time bound
  covers its precision ('-12' ends at 12:59:59.999999). An empty stored value never matches a
  range. Date and time are matched each alone in Query/Retrieve (combined datetime matching is
  not negotiated); the Modality Worklist matches its SPS Start Date and Time as one datetime
  range (`combined_range`, as dcm4chee's "combined range matching": 'yesterday 18:00 to today
  06:00' is one range, not two).
- List of UID matching (C.2.2.2.2) and multiple value matching (C.2.2.2.8): `a\\b` matches
  either; a multi-valued stored attribute (ModalitiesInStudy) matches when one of its values does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
RANGE_VRS = frozenset({"DA", "TM"})
_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
_NUMBER = re.compile(r"^[+-]?\d{1,12}$")
_NUMBER_VRS = frozenset({"IS", "US", "UL", "SS", "SL", "UV", "SV"})


class BadQueryValue(ValueError):
    """A query key whose value this VR cannot take (a malformed date, a wildcard in a UID)."""


@dataclass(frozen=True)
class Universal:
    """Matches every value, empty included: the attribute is only to be returned."""


@dataclass(frozen=True)
class Single:
    value: str


@dataclass(frozen=True)
class Wildcard:
    pattern: str  # with `*` and `?`


@dataclass(frozen=True)
class Range:
    low: str | None  # DA 'YYYYMMDD'; TM microseconds of the day, as a string of digits
    high: str | None


@dataclass(frozen=True)
class AnyOf:
    options: tuple[Single | Wildcard, ...]


Condition = Universal | Single | Wildcard | Range | AnyOf


@dataclass(frozen=True)
class DateTimeRange:
    """A date key and a time key read as one range of datetimes (PS3.4 C.2.2.2.5.1): each bound
    a (DA, microseconds of the day) pair, None when open."""

    low: tuple[str, int] | None
    high: tuple[str, int] | None


def condition(vr: str, values: Sequence[str]) -> Condition:
    """The condition a query key's value(s) asks for; `BadQueryValue` when the VR cannot take it."""
    values = [v.strip() for v in values]
    if len(values) > 1:
        options = [_one(vr, v, in_list=True) for v in values]
        return AnyOf(tuple(o for o in options if isinstance(o, Single | Wildcard)))
    if not values or values[0] in ("", "*"):
        return Universal()
    return _one(vr, values[0], in_list=False)


def _one(vr: str, value: str, *, in_list: bool) -> Condition:
    if vr in RANGE_VRS and "-" in value:
        if in_list:
            raise BadQueryValue(f"a {vr} range cannot be one of several values")
        low, _, high = value.partition("-")
        if not low and not high:
            raise BadQueryValue(f"a {vr} range needs a bound")
        return Range(_bound(vr, low, high=False), _bound(vr, high, high=True))
    if "*" in value or "?" in value:
        if vr not in WILDCARD_VRS:
            raise BadQueryValue(f"{vr} values take no wildcards")
        return Wildcard(value)
    if vr == "DA" and not _DA.match(value):
        raise BadQueryValue("a DA value is YYYYMMDD")
    if vr == "TM" and _time(value, high=False) is None:
        raise BadQueryValue("a TM value is HHMMSS.FFFFFF")
    if vr in _NUMBER_VRS and not _NUMBER.match(value):
        raise BadQueryValue(f"an {vr} value is a whole number")
    if vr == "UI" and len(value) > 64:
        raise BadQueryValue("a UID has at most 64 characters")
    return Single(value)


def _bound(vr: str, text: str, *, high: bool) -> str | None:
    if not text:
        return None
    if vr == "DA":
        if not _DA.match(text):
            raise BadQueryValue("a DA range is YYYYMMDD-YYYYMMDD")
        return text
    us = _time(text, high=high)
    if us is None:
        raise BadQueryValue("a TM range is HHMMSS-HHMMSS")
    return str(us)


def _time(text: str, *, high: bool) -> int | None:
    """TM -> microseconds of the day; a high bound runs to the end of the precision given."""
    m = _TM.match(text.strip())
    if not m:
        return None
    hh, mm, ss, frac = m[1], m[2], m[3], m[4]
    if int(hh) > 23 or (mm and int(mm) > 59) or (ss and int(ss) > 60):
        return None
    fill = "9" if high else "0"
    minutes = int(mm) if mm else (59 if high else 0)
    seconds = min(int(ss), 59) if ss else (59 if high else 0)
    micro = int((frac or "").ljust(6, fill)) if ss else (999_999 if high else 0)
    return ((int(hh) * 60 + minutes) * 60 + seconds) * 1_000_000 + micro


def matches(cond: Condition, vr: str, stored: str | Sequence[str]) -> bool:
    """Whether the stored value (or one of a multi-valued attribute's values) satisfies `cond`."""
    if isinstance(cond, Universal):
        return True
    values = [stored] if isinstance(stored, str) else list(stored)
    return any(_matches(cond, vr, (v or "").strip()) for v in values or [""])


def _matches(cond: Condition, vr: str, value: str) -> bool:
    if isinstance(cond, AnyOf):
        return any(_matches(option, vr, value) for option in cond.options)
    if isinstance(cond, Range):
        key = value if vr == "DA" and _DA.match(value) else None
        if vr == "TM":
            us = _time(value, high=False)
            key = str(us) if us is not None else None
        if key is None:
            return False
        as_number = vr == "TM"
        return _at_least(key, cond.low, as_number) and _at_least(cond.high, key, as_number)
    if vr == "PN":
        return _name_matches(cond, value)
    if isinstance(cond, Single):
        return value == cond.value
    if isinstance(cond, Wildcard):
        return _regex(cond.pattern, ignore_case=False).fullmatch(value) is not None
    return True


def _at_least(a: str | None, b: str | None, as_number: bool) -> bool:
    """a >= b, where a missing bound always holds."""
    if a is None or b is None:
        return True
    return int(a) >= int(b) if as_number else a >= b


def _name_matches(cond: Single | Wildcard | Universal, stored: str) -> bool:
    """PN: a query naming one component group matches any group of the stored name (a kanji
    query finds the ideographic group); one naming several ('Yamada^Tarou=山田^太郎') matches
    group by group, an empty group in the query matching anything."""
    text = cond.value if isinstance(cond, Single) else cond.pattern if isinstance(cond, Wildcard) else ""
    wildcard = isinstance(cond, Wildcard)
    query_groups = [_trim_name(g) for g in text.split("=")]
    stored_groups = [_trim_name(g) for g in stored.split("=")][:3]
    if len(query_groups) == 1:
        return any(_name_group_matches(query_groups[0], g, wildcard) for g in stored_groups)
    stored_groups += [""] * (len(query_groups) - len(stored_groups))
    return all(
        not q or _name_group_matches(q, s, wildcard)
        for q, s in zip(query_groups, stored_groups, strict=False)
    )


def _name_group_matches(query: str, stored: str, wildcard: bool) -> bool:
    if wildcard:
        return _regex(query, ignore_case=True).fullmatch(stored) is not None
    return query.casefold() == stored.casefold()


def _trim_name(group: str) -> str:
    return "^".join(part.strip() for part in group.split("^")).rstrip("^")


def _regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def combined_range(date: Condition, time: Condition) -> DateTimeRange | None:
    """A DA condition and a TM condition as one datetime range, when together they ask for one:
    both given, at least one a range, neither a list nor a wildcard. Else None: each is matched
    alone (a single date and a time range ask the same either way). A date range with a time
    range runs from the low date at the low time to the high date at the high time; a missing
    time bound is the start (low) or the end (high) of its day."""
    if isinstance(date, Universal) or isinstance(time, Universal):
        return None
    if not isinstance(date, Single | Range) or not isinstance(time, Single | Range):
        return None
    if isinstance(date, Single) and isinstance(time, Single):
        return None
    date_low, date_high = (date.value, date.value) if isinstance(date, Single) else (date.low, date.high)
    if isinstance(time, Single):
        time_low, time_high = _time(time.value, high=False), _time(time.value, high=True)
    else:
        time_low = int(time.low) if time.low is not None else None
        time_high = int(time.high) if time.high is not None else None
    low = (date_low, time_low if time_low is not None else 0) if date_low is not None else None
    end_of_day = 86_399_999_999
    high = (date_high, time_high if time_high is not None else end_of_day) if date_high is not None else None
    return DateTimeRange(low, high)


def matches_datetime(cond: DateTimeRange, date: str, time: str) -> bool:
    """Whether a stored date and time fall in the range; an empty one never does."""
    date, time = (date or "").strip(), (time or "").strip()
    us = _time(time, high=False) if time else None
    if not _DA.match(date) or us is None:
        return False
    stored = (date, us)
    return (cond.low is None or stored >= cond.low) and (cond.high is None or stored <= cond.high)


def literal_hint(cond: Condition) -> str | None:
    """The longest run of literal characters every match contains (no wildcard, no PN
    delimiter): lets SQL narrow a name or wildcard query with `LIKE '%hint%'`."""
    if isinstance(cond, Single):
        text = cond.value
    elif isinstance(cond, Wildcard):
        text = cond.pattern
    else:
        return None
    runs = [r for r in re.split(r"[*?^=]", text) if r.strip()]
    return max(runs, key=len).strip() if runs else None


def like_pattern(pattern: str, escape: str = "!") -> str:
    """A DICOM wildcard pattern as a SQL LIKE pattern with `escape` as the escape character."""
    out = []
    for c in pattern:
        if c in ("%", "_", escape):
            out.append(escape + c)
        else:
            out.append("%" if c == "*" else "_" if c == "?" else c)
    return "".join(out)


@lru_cache(maxsize=4096)  # names repeat across matches and queries (physicians, a patient's studies)
def trimmed_name(value: str) -> str:
    """A PN value without trailing empty components or groups, for comparison and output."""
    return "=".join(_trim_name(g) for g in value.split("=")).rstrip("=")
