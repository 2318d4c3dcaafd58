from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from mapping.dicom.dates import fhir_date, fhir_datetime, fhir_dt, parse_offset

ZURICH = ZoneInfo("Europe/Zurich")


@pytest.mark.parametrize(
    ("da", "expected"),
    [
        ("20240305", "2024-03-05"),
        ("2024030", None),
        ("20240230", None),
        ("", None),
        ("2024-03-05", None),
    ],
)
def test_fhir_date_never_guesses(da: str, expected: str | None) -> None:
    assert fhir_date(da) == expected


def test_local_time_gets_the_site_zone_with_daylight_saving() -> None:
    assert fhir_datetime("20240115", "101500", offset="", site_zone=ZURICH) == "2024-01-15T10:15:00+01:00"
    assert fhir_datetime("20240715", "101500", offset="", site_zone=ZURICH) == "2024-07-15T10:15:00+02:00"


def test_timezone_offset_from_utc_wins_over_the_site_zone() -> None:
    assert fhir_datetime("20240115", "1015", offset="-0500", site_zone=ZURICH) == "2024-01-15T10:15:00-05:00"


def test_fractions_and_utc() -> None:
    assert fhir_datetime("20240115", "101500.123456", offset="", site_zone=UTC) == "2024-01-15T10:15:00.123Z"


def test_old_colon_time_format_and_bad_time_fall_back_to_the_date() -> None:
    assert fhir_datetime("20240115", "10:15:30", offset="", site_zone=UTC) == "2024-01-15T10:15:30Z"
    assert fhir_datetime("20240115", "2561", offset="", site_zone=UTC) == "2024-01-15"
    assert fhir_datetime("", "101500", offset="", site_zone=UTC) is None


@pytest.mark.parametrize("text", ["+1500", "0100", "+01", "+0160"])
def test_bad_offsets_are_ignored(text: str) -> None:
    assert parse_offset(text) is None


def test_dt_at_the_precision_written_its_own_offset_first() -> None:
    assert fhir_dt("20240715101500", offset="", site_zone=ZURICH) == "2024-07-15T10:15:00+02:00"
    assert (
        fhir_dt("20240115101500.5-0500", offset="+0100", site_zone=ZURICH) == "2024-01-15T10:15:00.500-05:00"
    )
    assert fhir_dt("20240115101500", offset="+0100", site_zone=UTC) == "2024-01-15T10:15:00+01:00"
    assert fhir_dt("20240115", offset="", site_zone=UTC) == "2024-01-15"
    assert fhir_dt("202401", offset="", site_zone=UTC) == "2024-01"
    assert fhir_dt("2024", offset="", site_zone=UTC) == "2024"
    assert [fhir_dt(v, offset="", site_zone=UTC) for v in ("", "202413", "2024-01-15", "20240230")] == [
        None
    ] * 4
