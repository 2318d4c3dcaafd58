from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from mapping.fhir.dates import instant, value_range

ZURICH = ZoneInfo("Europe/Zurich")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2024", utc(2023, 12, 31, 23), utc(2024, 12, 31, 23)),
        ("2024-12", utc(2024, 11, 30, 23), utc(2024, 12, 31, 23)),
        ("2024-03-05", utc(2024, 3, 4, 23), utc(2024, 3, 5, 23)),
        ("2024-03-05T10:15:00Z", utc(2024, 3, 5, 10, 15), utc(2024, 3, 5, 10, 15, 1)),
        ("2024-03-05T10:15:00+01:00", utc(2024, 3, 5, 9, 15), utc(2024, 3, 5, 9, 15, 1)),
        ("2024-03-05T10:15", utc(2024, 3, 5, 9, 15), utc(2024, 3, 5, 9, 16)),
    ],
)
def test_ranges_in_utc_with_site_zone_for_zoneless_values(text: str, low: datetime, high: datetime) -> None:
    assert value_range(text, ZURICH) == (low, high)


def test_millisecond_precision_is_a_millisecond() -> None:
    span = value_range("2024-03-05T10:15:00.123Z", ZURICH)
    assert span is not None and (span[1] - span[0]).total_seconds() == 0.001


@pytest.mark.parametrize("text", ["", "24", "2024-13", "2024-02-30", "20240305", "2024-03-05T25:00Z"])
def test_not_a_date(text: str) -> None:
    assert value_range(text, ZURICH) is None


def test_instant_is_utc_with_milliseconds() -> None:
    assert instant(datetime(2024, 3, 5, 10, 15, 0, 123456, tzinfo=ZURICH)) == "2024-03-05T09:15:00.123Z"


END = datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("9999-12-31T23:59:59Z", utc(9999, 12, 31, 23, 59, 59), END),
        ("9999-12-31T23:00:00-05:00", END, END),
        ("9999", utc(9998, 12, 31, 23), END),
        ("9999-12-31", utc(9999, 12, 30, 23), END),
    ],
)
def test_the_end_of_the_calendar_is_held_not_overflowed(text: str, low: datetime, high: datetime) -> None:
    assert value_range(text, ZURICH) == (low, high)


@pytest.mark.parametrize(
    "text", ["2020-01-01T00:00:00+25:00", "2020-01-01T00:00:00-24:00", "2020-01-01T00:00+01:60"]
)
def test_zone_offsets_out_of_range_are_not_dates(text: str) -> None:
    assert value_range(text, ZURICH) is None
