"""FHIR date / dateTime / instant text -> the half-open UTC range it denotes (FHIR R4 3.1.1.4.1.1).

'2024' covers the whole year, '2024-03-05' the day, '2024-03-05T10:00:00+01:00'
one second. A value without a zone (a date, or a search value like '2024-03-05T10:00')
is read in the site's zone, passed in by the caller: a radiology department means
"the 5th of March" in its own local time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_FHIR_DATETIME = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def value_range(text: str, site_zone: tzinfo) -> tuple[datetime, datetime] | None:
    """[low, high) in UTC for a FHIR date/dateTime/instant (minutes-only precision allowed for
    search values); None when the text is not one."""
    m = _FHIR_DATETIME.match(text.strip())
    if not m:
        return None
    try:
        year = int(m["y"])
        if m["m"] is None:
            low = datetime(year, 1, 1)
            high = _after(year + 1, 1)
        elif m["d"] is None:
            month = int(m["m"])
            low = datetime(year, month, 1)
            high = _after(year + (month == 12), month % 12 + 1)
        elif m["H"] is None:
            low = datetime(year, int(m["m"]), int(m["d"]))
            high = shifted(low, timedelta(days=1))
        else:
            second = int(m["S"] or 0)
            fraction = m["f"] or ""
            micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
            low = datetime(year, int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), min(second, 59), micro)
            if m["S"] is None:
                step = timedelta(minutes=1)
            elif fraction:
                step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
            else:
                step = timedelta(seconds=1)
            high = shifted(low, step)
        zone = _zone(m["tz"]) if m["H"] is not None and m["tz"] else site_zone
    except ValueError:  # a day, month or zone offset out of range
        return None
    return _utc(low, zone), _utc(high, zone)


def shifted(moment: datetime, delta: timedelta) -> datetime:
    """`moment + delta`, held at the ends of the calendar (datetime.min / max) instead of
    overflowing: a range that reaches 9999-12-31 ends there."""
    try:
        return moment + delta
    except OverflowError:
        end = datetime.max if delta > timedelta(0) else datetime.min
        return end.replace(tzinfo=moment.tzinfo)


def _after(year: int, month: int) -> datetime:
    """The first of `month` in `year`, or the end of the calendar after 9999."""
    return datetime(year, month, 1) if year <= datetime.max.year else datetime.max


def _zone(text: str) -> tzinfo:
    """'Z' or '+hh:mm' (ISO 8601 offsets stay within +-23:59; `timezone` raises ValueError beyond)."""
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if minutes > 59:
        raise ValueError("zone offset minutes out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _utc(local: datetime, zone: tzinfo) -> datetime:
    """`local` in `zone` as UTC, held at the ends of the calendar (9999-12-31T23:00-05:00 is past
    datetime.max in UTC); the calendar's ends themselves stay ends in any zone."""
    if local in (datetime.max, datetime.min):
        return local.replace(tzinfo=UTC)
    try:
        return local.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        end = datetime.max if local.year == datetime.max.year else datetime.min
        return end.replace(tzinfo=UTC)


def instant(value: datetime) -> str:
    """An aware datetime as a FHIR instant (meta.lastUpdated): UTC, milliseconds, 'Z'."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
