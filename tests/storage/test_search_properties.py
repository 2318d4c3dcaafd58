"""Property: the search parser answers every query string with a query or Invalid, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import Invalid
from storage.fhir_store.criteria import parse_search
from tests.search_strategies import RESOURCE_TYPES, many_pairs

ZONE = ZoneInfo("Europe/Zurich")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(res_type=st.sampled_from(RESOURCE_TYPES), pairs=many_pairs(), lenient=st.booleans())
def test_the_parser_answers_a_query_or_invalid(
    res_type: str, pairs: list[tuple[str, str]], lenient: bool
) -> None:
    try:
        parse_search(res_type, pairs, site_zone=ZONE, lenient=lenient, now=datetime(2026, 1, 1, tzinfo=UTC))
    except Invalid as exc:
        assert str(exc)
