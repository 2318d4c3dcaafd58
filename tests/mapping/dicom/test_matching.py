"""C-FIND matching (PS3.4 C.2.2.2), pure."""

from __future__ import annotations

import pytest

from mapping.dicom.matching import (
    AnyOf,
    BadQueryValue,
    Range,
    Single,
    Universal,
    Wildcard,
    condition,
    like_pattern,
    literal_hint,
    matches,
)


@pytest.mark.parametrize(
    ("vr", "values", "expected"),
    [
        ("LO", [], Universal()),
        ("LO", [""], Universal()),
        ("PN", ["*"], Universal()),
        ("DA", ["*"], Universal()),
        ("LO", ["PID-1"], Single("PID-1")),
        ("LO", [" PID-1 "], Single("PID-1")),
        ("PN", ["Doe*"], Wildcard("Doe*")),
        ("DA", ["20240101-20241231"], Range("20240101", "20241231")),
        ("DA", ["-20241231"], Range(None, "20241231")),
        ("TM", ["12-"], Range("43200000000", None)),
        ("UI", ["1.2", "1.3"], AnyOf((Single("1.2"), Single("1.3")))),
        ("CS", ["CT", "M?"], AnyOf((Single("CT"), Wildcard("M?")))),
    ],
)
def test_conditions(vr: str, values: list[str], expected: object) -> None:
    assert condition(vr, values) == expected


@pytest.mark.parametrize(
    ("vr", "value"),
    [
        ("DA", "2024-01-01"),
        ("DA", "20240101-2024"),
        ("DA", "-"),
        ("UI", "1.2.*"),
        ("UI", "1." + "2" * 70),
        ("TM", "25"),
        ("TM", "10-1x"),
        ("IS", "1*"),
    ],
)
def test_values_a_vr_cannot_take(vr: str, value: str) -> None:
    with pytest.raises(BadQueryValue):
        condition(vr, [value])


@pytest.mark.parametrize(
    ("vr", "query", "stored", "expected"),
    [
        ("LO", "PID-1", "PID-1", True),
        ("LO", "PID-1", "pid-1", False),  # case counts outside names
        ("LO", "PID*", "PID-77", True),
        ("LO", "P?D-1", "PID-1", True),
        ("LO", "P?D-1", "PD-1", False),
        ("LO", "100%", "100%", True),
        ("LO", "a_b", "axb", False),  # SQL's wildcards are literals here
        ("PN", "doe^john", "Doe^John", True),
        ("PN", "Doe^John", "Doe^John^^^", True),
        ("PN", "Doe", "Doe^John", False),
        ("PN", "Doe*", "Doe^John", True),
        ("PN", "müller*", "MÜLLER^Jörg", True),
        ("PN", "山田*", "Yamada^Tarou=山田^太郎=やまだ^たろう", True),
        ("PN", "=山田^太郎", "Yamada^Tarou=山田^太郎=やまだ^たろう", True),
        ("PN", "Yamada^Tarou=山田^花子", "Yamada^Tarou=山田^太郎=やまだ^たろう", False),
        ("DA", "20240101-20241231", "20240305", True),
        ("DA", "20240101-20241231", "20250101", False),
        ("DA", "20240101-", "", False),  # an empty value never matches a range
        ("DA", "-20240101", "20240101", True),  # bounds included
        ("TM", "1000-1100", "103000.123", True),
        ("TM", "1000-1100", "10:30", True),  # ACR-NEMA style colons
        ("TM", "-10", "105959.999999", True),  # the hour runs to its end
        ("TM", "-10", "110000", False),
        ("TM", "1000-", "", False),
        ("CS", "CT", ["MR", "CT"], True),  # ModalitiesInStudy: one of the values
        ("CS", "C*", ["MR", "SR"], False),
    ],
)
def test_matches(vr: str, query: str, stored: str | list[str], expected: bool) -> None:
    assert matches(condition(vr, [query]), vr, stored) is expected


def test_lists_match_any_option() -> None:
    cond = condition("UI", ["1.2.3", "1.2.4"])
    assert matches(cond, "UI", "1.2.4")
    assert not matches(cond, "UI", "1.2.5")


def test_sql_helpers() -> None:
    assert like_pattern("a*b?c%d_e!") == "a%b_c!%d!_e!!"
    assert literal_hint(Wildcard("*ama*^Tar*")) == "ama"
    assert literal_hint(Single("Yamada^Tarou=山田^太郎")) == "Yamada"
    assert literal_hint(Wildcard("*")) is None
    assert literal_hint(Range("1", "2")) is None


def test_a_date_range_and_a_time_range_are_one_datetime_range() -> None:
    from mapping.dicom.matching import DateTimeRange, combined_range, matches_datetime

    hour = 3600 * 10**6
    night = combined_range(condition("DA", ["20261202-20261203"]), condition("TM", ["1800-06"]))
    assert night == DateTimeRange(("20261202", 18 * hour), ("20261203", 7 * hour - 1))
    assert matches_datetime(night, "20261202", "2359")
    assert matches_datetime(night, "20261203", "06:30")  # the hour bound covers the hour
    assert not matches_datetime(night, "20261203", "0700")
    assert not matches_datetime(night, "20261202", "")  # an empty stored time never matches
    from_today = combined_range(condition("DA", ["20261203-"]), condition("TM", ["0800-"]))
    assert from_today == DateTimeRange(("20261203", 8 * 3600 * 10**6), None)
    assert matches_datetime(from_today, "20300101", "0000")


def test_combined_only_when_a_range_asks_for_it() -> None:
    from mapping.dicom.matching import combined_range

    assert combined_range(condition("DA", ["20261203"]), condition("TM", ["0800"])) is None
    assert combined_range(condition("DA", ["20261203-"]), condition("TM", [])) is None
    assert combined_range(condition("DA", ["20261203", "20261204"]), condition("TM", ["0800-"])) is None
