"""FHIR R4 search request -> a typed query (FHIR R4 3.1.1 Search).

Supported: the parameters of `mapping.search_params.REGISTRY` plus `_id` and
`_lastUpdated`; OR within a parameter (commas), AND across repeats; token
`system|code`, `|code`, `system|`, `:not`, `:missing`, `identifier:of-type`, reference `:identifier`; string
(starts-with, `:exact`, `:contains`); date prefixes eq ne lt gt le ge sa eb ap;
reference `id`, `Type/id`, absolute URL, `:Type`; `_count`, `_offset`, `_sort`,
`_include`, `_summary=count|false`, `_total`. Anything else is refused with a
precise message, or dropped under `Prefer: handling=lenient` (and then left out
of the self link, which must show what was actually applied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Literal

from mapping.fhir.dates import shifted, value_range
from mapping.fhir.search_params import INCLUDES, OF_TYPE, REGISTRY, SearchParam
from storage.errors import Invalid

Prefix = Literal["eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap"]
_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")
_IGNORED = {"_format", "_pretty"}  # handled by the HTTP layer
_RESULT = {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_total"}
_SPLIT = re.compile(r"(?<!\\),")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
MAX_COUNT = 1000
# Limits on one search (README "Limits"): each value becomes an EXISTS with bound variables,
# and SQLite refuses a statement with more than 32,766 of them.
MAX_PARAMETERS = 50  # parameters in one request (name=value pairs, repeats included)
MAX_VALUES = 100  # comma-separated values in one parameter
MAX_TOTAL_VALUES = 500  # comma-separated values over all parameters
MAX_LENGTH = 1024  # characters in one parameter name or value


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code (the `system|` form)


@dataclass(frozen=True)
class DateValue:
    prefix: Prefix
    low: datetime
    high: datetime


@dataclass(frozen=True)
class RefValue:
    target_type: str | None
    target_id: str


@dataclass(frozen=True)
class QuantityValue:
    """`[prefix]number|system|code`: `low` / `high` the range the number's precision implies."""

    prefix: Prefix
    number: float
    low: float
    high: float
    system: str | None
    code: str | None


Value = TokenValue | DateValue | RefValue | QuantityValue | str | bool


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are ORed; criteria are ANDed."""

    name: str  # parameter name as indexed (e.g. "identifier:of-type", "_id", "_lastUpdated")
    type: str  # token / string / date / reference / missing
    modifier: str | None
    values: tuple[Value, ...]
    raw: tuple[str, str]  # (name as sent, value as sent) for the self link


@dataclass(frozen=True)
class Include:
    """`_include` (the matches' references) or, `reverse`, `_revinclude` (resources of
    `source_type` whose `param` references a match)."""

    source_type: str
    param: str
    target_type: str | None
    raw: str
    reverse: bool = False


@dataclass(frozen=True)
class SearchQuery:
    res_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = 20
    offset: int = 0
    sort: tuple[tuple[str, bool], ...] = ()  # (parameter, descending)
    includes: tuple[Include, ...] = ()
    summary_count: bool = False
    total: bool = True
    ignored: tuple[str, ...] = field(default=())  # names dropped under lenient handling

    def link_params(self) -> list[tuple[str, str]]:
        """The parameters as applied, for self / next / previous links."""
        params = [c.raw for c in self.criteria]
        params += [("_revinclude" if i.reverse else "_include", i.raw) for i in self.includes]
        if self.sort:
            params.append(("_sort", ",".join(("-" if d else "") + n for n, d in self.sort)))
        if self.summary_count:
            params.append(("_summary", "count"))
        if not self.total:
            params.append(("_total", "none"))
        params.append(("_count", str(self.count)))
        return params


def parse_search(
    res_type: str,
    pairs: list[tuple[str, str]],
    *,
    site_zone: tzinfo,
    lenient: bool = False,
    default_count: int = 20,
    now: datetime,
) -> SearchQuery:
    """Parse `pairs` (decoded query or form parameters) for a search on `res_type`."""
    registry = REGISTRY.get(res_type)
    if registry is None:
        raise Invalid(f"resource type {res_type} is not supported")
    within_limits(pairs)
    criteria: list[Criterion] = []
    includes: list[Include] = []
    sort: tuple[tuple[str, bool], ...] = ()
    count, offset, summary_count, total = default_count, 0, False, True
    ignored: list[str] = []
    for name, value in pairs:
        try:
            if name in _IGNORED:
                continue
            if name == "_count":
                count = _int(name, value, 0, MAX_COUNT)
            elif name == "_offset":
                offset = _int(name, value, 0, 10**9)
            elif name == "_sort":
                sort = _sort(res_type, value)
            elif name == "_include":
                includes.append(_include(res_type, value))
            elif name == "_revinclude":
                includes.append(_revinclude(res_type, value))
            elif name == "_summary":
                if value not in ("count", "false"):
                    raise Invalid(f"_summary={value} is not supported (count and false are)")
                summary_count = value == "count"
            elif name == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise Invalid("_total must be none, estimate or accurate")
                total = value != "none"
            else:
                criteria.append(_criterion(registry, name, value, site_zone, now))
        except Invalid:
            if not lenient:
                raise
            ignored.append(name)
    if count == 0:
        summary_count = True
        count = default_count
    return SearchQuery(
        res_type,
        tuple(criteria),
        count,
        offset,
        sort,
        tuple(includes),
        summary_count,
        total or summary_count,
        tuple(ignored),
    )


def within_limits(pairs: list[tuple[str, str]]) -> None:
    """Invalid (whatever the handling) when the request is beyond the limits above or a name or
    value holds a control character (C0 or DEL: no FHIR string contains one, R4 2.24.0.1)."""
    if len(pairs) > MAX_PARAMETERS:
        raise Invalid(f"a search takes at most {MAX_PARAMETERS} parameters")
    total = 0
    for name, value in pairs:
        values = len(_SPLIT.split(value))
        if values > MAX_VALUES:
            raise Invalid(f"a search parameter takes at most {MAX_VALUES} comma-separated values")
        if len(name) > MAX_LENGTH or len(value) > MAX_LENGTH:
            raise Invalid(f"a search parameter name or value is at most {MAX_LENGTH} characters")
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise Invalid("a search parameter holds a control character")
        total += values
    if total > MAX_TOTAL_VALUES:
        raise Invalid(f"a search takes at most {MAX_TOTAL_VALUES} values over all its parameters")


def _criterion(
    registry: dict[str, SearchParam], name: str, value: str, zone: tzinfo, now: datetime
) -> Criterion:
    base, _, modifier = name.partition(":")
    if "." in base:
        raise Invalid(f"chained parameter {base} is not supported")
    if base.startswith("_") and base not in ("_id", "_lastUpdated"):
        raise Invalid(f"parameter {base} is not supported")
    kind = {"_id": "token", "_lastUpdated": "date"}.get(base) or (
        registry[base].type if base in registry else None
    )
    if kind is None:
        raise Invalid(f"unknown search parameter {base}")
    mod = modifier or None
    if value == "":
        raise Invalid(f"parameter {name} has an empty value")
    if mod == "missing":
        if value not in ("true", "false"):
            raise Invalid(f"{name} must be true or false")
        return Criterion(base, "missing", mod, (value == "true",), (name, value))
    parts = _SPLIT.split(value)
    indexed = base
    if kind == "token":
        if mod == "of-type":
            if base != "identifier":
                raise Invalid(":of-type applies to identifier only")
            indexed = OF_TYPE
            values: tuple[Value, ...] = tuple(_of_type(p) for p in parts)
        elif mod in (None, "not"):
            values = tuple(_token(p) for p in parts)
        else:
            raise Invalid(f"modifier :{mod} is not supported on token parameter {base}")
    elif kind == "string":
        if mod not in (None, "exact", "contains"):
            raise Invalid(f"modifier :{mod} is not supported on string parameter {base}")
        values = tuple(_unescape(p) for p in parts)
    elif kind == "date":
        if mod is not None:
            raise Invalid(f"modifier :{mod} is not supported on date parameter {base}")
        values = tuple(_date(base, p, zone, now) for p in parts)
    elif kind == "quantity":
        if mod is not None:
            raise Invalid(f"modifier :{mod} is not supported on quantity parameter {base}")
        values = tuple(_quantity(base, p) for p in parts)
    elif mod == "identifier":
        if not registry[base].identifier_path:
            raise Invalid(f"modifier :identifier is not supported on reference parameter {base}")
        return Criterion(f"{base}:identifier", "token", None, tuple(_token(p) for p in parts), (name, value))
    else:
        targets = registry[base].targets
        if mod is not None and mod not in targets:
            raise Invalid(f"modifier :{mod} is not supported on reference parameter {base}")
        values = tuple(_reference(p, mod, targets) for p in parts)
    return Criterion(indexed, kind, mod, values, (name, value))


def _token(text: str) -> TokenValue:
    parts = re.split(r"(?<!\\)\|", text)
    if len(parts) == 1:
        return TokenValue(None, _unescape(parts[0]))
    if len(parts) != 2:
        raise Invalid("a token is [system]|[code]")
    system, code = _unescape(parts[0]), _unescape(parts[1])
    if not system and not code:
        raise Invalid("a token needs a system or a code")
    return TokenValue(system, code or None)


def _of_type(text: str) -> TokenValue:
    parts = re.split(r"(?<!\\)\|", text)
    if len(parts) != 3 or not all(parts[1:]):
        raise Invalid("identifier:of-type is [type system]|[type code]|[value]")
    return TokenValue(f"{_unescape(parts[0])}|{_unescape(parts[1])}", _unescape(parts[2]))


def _date(name: str, text: str, zone: tzinfo, now: datetime) -> DateValue:
    prefix: Prefix = "eq"
    if text[:2] in _PREFIXES:
        prefix, text = text[:2], text[2:]  # type: ignore[assignment]
    span = value_range(text, zone)
    if span is None:
        raise Invalid(f"{name}: '{text}' is not a FHIR date or dateTime")
    low, high = span
    if prefix == "ap":  # "approximately": 10% of the distance to now, at least a day (R4 3.1.1.4.1)
        slack = max(abs(now - low) / 10, timedelta(days=1))
        low, high = shifted(low, -slack), shifted(high, slack)
    return DateValue(prefix, low, high)


def _quantity(name: str, text: str) -> QuantityValue:
    prefix: Prefix = "eq"
    if text[:2] in _PREFIXES:
        prefix, text = text[:2], text[2:]  # type: ignore[assignment]
    parts = re.split(r"(?<!\\)\|", text)
    if len(parts) not in (1, 3):
        raise Invalid(f"{name}: a quantity is [prefix]number or [prefix]number|[system]|[code]")
    try:
        number = Decimal(parts[0])
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or not _NUMBER.fullmatch(parts[0]):
        raise Invalid(f"{name}: '{parts[0]}' is not a number")
    # the implicit range of the number's precision: half a unit of its last digit either side
    half = Decimal(1).scaleb(number.as_tuple().exponent) / 2  # type: ignore[arg-type]
    low, high = number - half, number + half
    if prefix == "ap":  # "approximately": 10% either side (R4 3.1.1.4.1)
        slack = abs(number) / 10
        low, high = min(low, number - slack), max(high, number + slack)
    system = _unescape(parts[1]) if len(parts) == 3 else ""
    code = _unescape(parts[2]) if len(parts) == 3 else ""
    return QuantityValue(prefix, float(number), float(low), float(high), system or None, code or None)


def _reference(text: str, modifier: str | None, targets: tuple[str, ...]) -> RefValue:
    text = _unescape(text).rstrip("/")
    segments = text.split("/")
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    if len(segments) >= 2 and segments[-2] in targets:
        kind, rid = segments[-2], segments[-1]
        if modifier and modifier != kind:
            raise Invalid(f"reference type {kind} contradicts modifier :{modifier}")
        return RefValue(kind, rid)
    if len(segments) == 1 and re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", text):
        return RefValue(modifier or (targets[0] if len(targets) == 1 else None), text)
    raise Invalid("a reference is an id, Type/id or an absolute URL ending in Type/id")


def _sort(res_type: str, text: str) -> tuple[tuple[str, bool], ...]:
    keys = []
    for item in text.split(","):
        desc = item.startswith("-")
        name = item[1:] if desc else item
        param = REGISTRY[res_type].get(name)
        if name not in ("_id", "_lastUpdated") and (
            param is None or param.type not in ("date", "string", "token", "quantity")
        ):
            raise Invalid(f"cannot sort by {name}")
        keys.append((name, desc))
    return tuple(keys)


def _include(res_type: str, text: str) -> Include:
    parts = text.split(":")
    if parts[0] != res_type or len(parts) not in (2, 3) or parts[1] not in INCLUDES.get(res_type, ()):
        allowed = ", ".join(f"{res_type}:{p}" for p in INCLUDES.get(res_type, ())) or "none"
        raise Invalid(f"_include={text} is not supported (supported: {allowed})")
    target = parts[2] if len(parts) == 3 else None
    if target is not None and target not in REGISTRY[res_type][parts[1]].targets:
        raise Invalid(f"_include target {target} is not a target of {res_type}:{parts[1]}")
    return Include(res_type, parts[1], target, text)


def _revinclude(res_type: str, text: str) -> Include:
    """`Source:param[:Target]`: resources of Source whose reference parameter `param` may point at
    `res_type`."""
    parts = text.split(":")
    source = REGISTRY.get(parts[0])
    param = source.get(parts[1]) if source is not None and len(parts) in (2, 3) else None
    if param is None or param.type != "reference" or res_type not in param.targets:
        raise Invalid(
            f"_revinclude={text} is not supported: it names a reference parameter of a type we serve "
            f"that may point at {res_type}"
        )
    if len(parts) == 3 and parts[2] != res_type:
        raise Invalid(f"_revinclude target {parts[2]} is not {res_type}")
    return Include(parts[0], parts[1], res_type, text, reverse=True)


def _int(name: str, text: str, low: int, high: int) -> int:
    if not text.isdigit():
        raise Invalid(f"{name} must be a non-negative integer")
    return min(max(int(text), low), high)


def _unescape(text: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", text)
