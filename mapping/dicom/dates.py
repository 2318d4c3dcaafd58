"""DICOM DA / TM / TimezoneOffsetFromUTC -> FHIR date and dateTime (PS3.5 6.2; FHIR R4 2.24.0.5).

A FHIR dateTime with a time must carry a zone. DICOM times are local times: we use
(0008,0201) when the instance has it, else the configured zone of the site (passed
in, never read here). Anything malformed maps to None: never a guess.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
_OFFSET = re.compile(r"^([+-])(\d{2})(\d{2})$")


def fhir_date(da: str) -> str | None:
    """DA 'YYYYMMDD' -> 'YYYY-MM-DD' when it is a real calendar date."""
    d = parse_da(da)
    return d.isoformat() if d else None


def parse_da(da: str) -> date | None:
    m = _DA.match(da.strip())
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def valid_tm(tm: str) -> bool:
    """A TM value (HH[MM[SS[.F{1,6}]]], colons tolerated) within the clock's ranges."""
    m = _TM.match(tm.strip())
    return m is not None and int(m[1]) <= 23 and int(m[2] or 0) <= 59 and int(m[3] or 0) <= 60


def fhir_datetime(da: str, tm: str, *, offset: str, site_zone: tzinfo) -> str | None:
    """DA + TM -> FHIR dateTime; date only when TM is absent, None when DA is unusable."""
    d = parse_da(da)
    if d is None:
        return None
    m = _TM.match(tm.strip())
    if not m:
        return d.isoformat()
    hour, minute, second = int(m[1]), int(m[2] or 0), int(m[3] or 0)
    micro = int((m[4] or "0").ljust(6, "0"))
    if hour > 23 or minute > 59 or second > 60:
        return d.isoformat()
    second = min(second, 59)  # a leap second has no Python representation
    zone = parse_offset(offset) or site_zone
    local = datetime(d.year, d.month, d.day, hour, minute, second, micro)
    value = local.replace(tzinfo=zone)
    text = value.isoformat(timespec="milliseconds" if micro else "seconds")
    return text.replace("+00:00", "Z") if zone is UTC else text


def parse_offset(offset: str) -> timezone | None:
    """(0008,0201) '&ZZXX', e.g. '+0100' -> a fixed zone."""
    m = _OFFSET.match(offset.strip())
    if not m:
        return None
    hours, minutes = int(m[2]), int(m[3])
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if m[1] == "-" else delta)


_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$")


def fhir_dt(dt: str, *, offset: str, site_zone: tzinfo) -> str | None:
    """DT 'YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]' (PS3.5 6.2) -> FHIR dateTime at the precision
    written; the DT's own offset wins over (0008,0201) `offset`, then the site's zone."""
    m = _DT.match(dt.strip())
    if not m:
        return None
    year, month, day, time, own = m[1], m[2], m[3], m[4] or "", m[5] or ""
    if day:
        return fhir_datetime(f"{year}{month}{day}", time, offset=own or offset, site_zone=site_zone)
    if month:
        return f"{year}-{month}" if 1 <= int(month) <= 12 else None
    return year
