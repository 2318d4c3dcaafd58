from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from storage.errors import Invalid
from storage.fhir_store.criteria import DateValue, RefValue, SearchQuery, TokenValue, parse_search

ZONE = ZoneInfo("Europe/Zurich")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def parse(res_type: str, *pairs: tuple[str, str], lenient: bool = False) -> SearchQuery:
    return parse_search(res_type, list(pairs), site_zone=ZONE, lenient=lenient, now=NOW)


def test_token_forms() -> None:
    q = parse("ImagingStudy", ("identifier", "urn:dicom:uid|urn:oid:1.2.3,|ACC1,ACC2,sys|"))
    assert q.criteria[0].values == (
        TokenValue("urn:dicom:uid", "urn:oid:1.2.3"),
        TokenValue("", "ACC1"),
        TokenValue(None, "ACC2"),
        TokenValue("sys", None),
    )


def test_escaped_comma_and_bar_stay_in_the_value() -> None:
    q = parse("ImagingStudy", ("identifier", r"a\,b\|c"))
    assert q.criteria[0].values == (TokenValue(None, "a,b|c"),)


def test_repeated_parameters_are_anded_and_keep_their_raw_form() -> None:
    q = parse("ImagingStudy", ("started", "ge2024-01-01"), ("started", "lt2025"))
    assert [c.raw for c in q.criteria] == [("started", "ge2024-01-01"), ("started", "lt2025")]
    first = q.criteria[0].values[0]
    assert isinstance(first, DateValue) and first.prefix == "ge"


def test_references() -> None:
    q = parse(
        "ImagingStudy",
        ("patient", "abc"),
        ("subject", "http://x/fhir/Patient/p1/_history/2"),
        ("subject:Patient", "p2"),
    )
    assert [c.values[0] for c in q.criteria] == [
        RefValue("Patient", "abc"),
        RefValue("Patient", "p1"),
        RefValue("Patient", "p2"),
    ]


def test_identifier_of_type() -> None:
    q = parse("ImagingStudy", ("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|ACSN|A1"))
    assert q.criteria[0].name == "identifier:of-type"
    assert q.criteria[0].values == (TokenValue("http://terminology.hl7.org/CodeSystem/v2-0203|ACSN", "A1"),)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("nonsense", "1"), "unknown search parameter nonsense"),
        (("patient.name", "x"), "chained"),
        (("started", "2024-13"), "not a FHIR date"),
        (("modality:text", "CT"), "modifier :text"),
        (("family:exact", "x"), "unknown search parameter family"),
        (("_include", "ImagingStudy:derived-from"), "not supported"),
        (("_sort", "nonsense"), "cannot sort"),
        (("_count", "-1"), "non-negative"),
        (("modality", ""), "empty value"),
        (("_has:Observation:subject:code", "x"), "not supported"),
    ],
)
def test_refusals_are_precise(pair: tuple[str, str], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        parse("ImagingStudy", pair)


def test_lenient_handling_drops_unknown_parameters_from_the_query_and_the_links() -> None:
    q = parse("Patient", ("nonsense", "1"), ("family", "Test"), lenient=True)
    assert q.ignored == ("nonsense",)
    assert ("nonsense", "1") not in q.link_params()
    assert ("family", "Test") in q.link_params()


def test_count_zero_means_summary_count() -> None:
    q = parse("Patient", ("_count", "0"))
    assert q.summary_count and q.total


def test_unsupported_type() -> None:
    with pytest.raises(Invalid, match="Medication"):
        parse("Medication")


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("started", "2020-01-01T00:00:00+25:00"), "not a FHIR date"),
        (("started", "2020-01-01T00:00:00+01:99"), "not a FHIR date"),
        (("modality", ",".join(["CT"] * 1000)), "at most 100 comma-separated values"),
        (("family", "x" * 50_000), "at most 1024 characters"),
    ],
)
def test_values_beyond_the_limits_are_invalid(pair: tuple[str, str], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        parse("ImagingStudy" if pair[0] != "family" else "Patient", pair)


def test_limits_hold_under_lenient_handling() -> None:
    with pytest.raises(Invalid, match="at most 50 parameters"):
        parse("ImagingStudy", *[("modality", "CT")] * 51, lenient=True)
    with pytest.raises(Invalid, match="at most 500 values"):
        parse("ImagingStudy", *[("modality", ",".join(["CT"] * 100))] * 6, lenient=True)


def test_end_of_calendar_ranges_are_held_at_datetime_max() -> None:
    for text in ("9999-12-31T23:59:59Z", "9999", "ap9999-12-31", "ap0001"):
        value = parse("ImagingStudy", ("started", text)).criteria[0].values[0]
        assert isinstance(value, DateValue) and value.low < value.high
        assert value.high <= datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize("char", ["\x00", "\t", "\n", "\x1f", "\x7f"])
def test_control_characters_are_invalid_in_values_and_names(char: str) -> None:
    with pytest.raises(Invalid, match="control character"):
        parse("Patient", ("name:contains", char))
    with pytest.raises(Invalid, match="control character"):
        parse("Patient", (f"fam{char}ily", "x"), lenient=True)
