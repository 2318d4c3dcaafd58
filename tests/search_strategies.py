"""Hypothesis strategies for FHIR search query strings: known and unknown parameter names,
modifiers, prefixes, dates near the edges, unicode, control characters, long strings and commas."""

from __future__ import annotations

from hypothesis import strategies as st

from mapping.fhir.search_params import REGISTRY

RESOURCE_TYPES = sorted(REGISTRY)
_NAMES = [
    *sorted({name for params in REGISTRY.values() for name in params}),
    "_id",
    "_lastUpdated",
    "_count",
    "_offset",
    "_sort",
    "_include",
    "_summary",
    "_total",
    "_pretty",
    "_has:Observation:subject:code",
    "patient.name",
]
_MODIFIERS = [
    "",
    ":not",
    ":missing",
    ":exact",
    ":contains",
    ":of-type",
    ":text",
    ":Patient",
    ":Endpoint",
    ":",
]
_PREFIXES = ["", "eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap", "xx"]
_DATES = [
    "2024",
    "2024-03",
    "2024-03-05",
    "2024-03-05T10:15",
    "2024-03-05T10:15:00Z",
    "2020-01-01T00:00:00+25:00",
    "2020-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999-05:00",
    "9999",
    "0001-01-01T00:00:00+14:00",
    "0000",
    "2024-02-30",
    "2024-13",
    "2024-03-05T24:00:00Z",
]
_FRAGMENTS = st.one_of(
    st.sampled_from(_DATES),
    st.sampled_from(["CT", "MR", "urn:oid:1.2.3", "Patient/p1", "http://x/fhir/Patient/p1", "true", "count"]),
    st.sampled_from(["|", "||", ",", "\\", "\\,", "\\|", "$", "%", "_", "*", "'", '"', ";", "/", ":"]),
    st.sampled_from(
        [
            "\x00",
            "\x01",
            "\t",
            "\n",
            "\r",
            "\x1f",
            "\x7f",
            "\u0085",
            "\u00a0",
            "\u2028",
            "\u3000",
            "\u200b",
            "\ufeff",
        ]
    ),
    st.text(max_size=12),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
)


@st.composite
def values(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(_PREFIXES))
    body = "".join(draw(st.lists(_FRAGMENTS, max_size=6)))
    shape = draw(st.sampled_from(["plain", "commas", "long"]))
    if shape == "commas":
        body = ",".join([body] * draw(st.integers(min_value=2, max_value=1100)))
    elif shape == "long":
        body = body + "x" * draw(st.sampled_from([1000, 1024, 1025, 50_000]))
    return prefix + body


@st.composite
def names(draw: st.DrawFn) -> str:
    base = draw(st.one_of(st.sampled_from(_NAMES), st.text(min_size=1, max_size=20)))
    return base + draw(st.sampled_from(_MODIFIERS))


def dates() -> st.SearchStrategy[tuple[str, str]]:
    """A date parameter with a prefix and a date near the edges, so that these meet often."""
    name = st.sampled_from(["started", "birthdate", "_lastUpdated"])
    value = st.tuples(st.sampled_from(_PREFIXES), st.sampled_from(_DATES)).map("".join)
    return st.tuples(name, value)


def pairs(max_size: int = 8) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.one_of(st.tuples(names(), values()), dates()), max_size=max_size)


def many_pairs() -> st.SearchStrategy[list[tuple[str, str]]]:
    """Usually a few parameters, sometimes past the limit on their number."""
    few = st.lists(st.tuples(names(), st.sampled_from(["CT", "x", "2024"])), min_size=1, max_size=3)
    return st.one_of(pairs(), few.map(lambda p: p * 26))
