"""A parsed FHIR search -> SQL over the FHIR store and its search-index tables.

Each criterion becomes a correlated EXISTS over one index table (OR inside a
criterion, AND across criteria), so every parameter type composes the same way
and the planner can use the (res_type, param, value) indexes. Date comparisons
follow the range semantics of FHIR R4 3.1.1.4.1: the target's [low, high) range
against the search value's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select, true

from storage.fhir_store.criteria import Criterion, DateValue, RefValue, SearchQuery, TokenValue
from storage.fhir_store.models import FhirResourceRow, SearchDate, SearchReference, SearchString, SearchToken
from storage.fhir_store.store import normalise
from storage.fhir_store.visibility import Alternatives

R = FhirResourceRow
_TABLES: dict[str, Any] = {
    "token": SearchToken,
    "string": SearchString,
    "date": SearchDate,
    "reference": SearchReference,
}


def matching(
    query: SearchQuery, param_types: Mapping[str, str], visible: Alternatives | None = None
) -> Select[Any]:
    """SELECT res_id of current, non-deleted resources of the type that meet every criterion and
    one of the `visible` alternatives (None: no restriction)."""
    stmt = select(R.res_id).where(R.res_type == query.res_type, R.deleted.is_(False))
    for criterion in query.criteria:
        stmt = stmt.where(_criterion(criterion, param_types))
    if visible is not None:
        stmt = stmt.where(restricted(visible, param_types))
    return stmt


def restricted(visible: Alternatives, param_types: Mapping[str, str]) -> ColumnElement[bool]:
    """OR of the alternatives, each the AND of its criteria (storage.fhir_store.visibility)."""
    if not visible:
        return false()
    return or_(*(and_(true(), *(_criterion(c, param_types) for c in alt)) for alt in visible))


def ordered(stmt: Select[Any], query: SearchQuery, param_types: Mapping[str, str]) -> Select[Any]:
    """Apply `_sort` (then res_id, so pages are stable)."""
    keys: list[ColumnElement[Any]] = []
    for name, desc in query.sort:
        expr = _sort_key(name, desc, param_types)
        keys.append((expr.desc() if desc else expr.asc()).nulls_last())
    return stmt.order_by(*keys, R.res_id)


def _criterion(c: Criterion, param_types: Mapping[str, str]) -> ColumnElement[bool]:
    if c.name == "_id":
        ids = [v.code for v in c.values if isinstance(v, TokenValue) and v.code is not None]
        cond = R.res_id.in_(ids)
        return not_(cond) if c.modifier == "not" else cond
    if c.name == "_lastUpdated":
        return or_(*(_instant(v) for v in c.values if isinstance(v, DateValue)))
    if c.type == "missing":
        table = _TABLES[param_types[c.name]]
        present = _exists(table, c.name)
        return not_(present) if c.values[0] else present
    table = _TABLES[c.type]
    if c.type == "token" and c.modifier == "not":
        return not_(or_(*(_exists(table, c.name, _token(v)) for v in c.values if isinstance(v, TokenValue))))
    return or_(*(_exists(table, c.name, _value(c, v)) for v in c.values))


def _exists(table: Any, param: str, cond: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
    inner = select(table.pk).where(
        table.res_type == R.res_type, table.res_id == R.res_id, table.param == param
    )
    if cond is not None:
        inner = inner.where(cond)
    return exists(inner)


def _value(c: Criterion, v: Any) -> ColumnElement[bool]:
    if isinstance(v, TokenValue):
        return _token(v)
    if isinstance(v, DateValue):
        return _date(v)
    if isinstance(v, RefValue):
        cond = SearchReference.target_id == v.target_id
        return and_(cond, SearchReference.target_type == v.target_type) if v.target_type else cond
    if c.modifier == "exact":
        return SearchString.exact == str(v)
    pattern = _like(normalise(str(v)))
    if c.modifier == "contains":
        return SearchString.value.like(f"%{pattern}%", escape="\\")
    return SearchString.value.like(f"{pattern}%", escape="\\")


def _token(v: TokenValue) -> ColumnElement[bool]:
    conds: list[ColumnElement[bool]] = []
    if v.code is not None:
        conds.append(SearchToken.code == v.code)
    if v.system == "":
        conds.append(SearchToken.system.is_(None))
    elif v.system is not None:
        conds.append(SearchToken.system == v.system)
    return and_(*conds) if conds else true()


def _date(v: DateValue) -> ColumnElement[bool]:
    low, high = SearchDate.low, SearchDate.high
    within = and_(low >= v.low, high <= v.high)
    match v.prefix:
        case "eq":
            return within
        case "ne":
            return not_(within)
        case "gt":
            return high > v.high
        case "lt":
            return low < v.low
        case "ge":
            return or_(high > v.high, within)
        case "le":
            return or_(low < v.low, within)
        case "sa":
            return low >= v.high
        case "eb":
            return high <= v.low
        case "ap":
            return and_(low < v.high, high > v.low)
    return false()


def _instant(v: DateValue) -> ColumnElement[bool]:
    """`_lastUpdated` against the stored instant (a point, not a range)."""
    t = R.last_updated
    within = and_(t >= v.low, t < v.high)
    match v.prefix:
        case "eq" | "ap":
            return within
        case "ne":
            return not_(within)
        case "gt" | "sa":
            return t >= v.high
        case "lt" | "eb":
            return t < v.low
        case "ge":
            return t >= v.low
        case "le":
            return t < v.high
    return false()


def _sort_key(name: str, desc: bool, param_types: Mapping[str, str]) -> ColumnElement[Any]:
    if name == "_id":
        return R.res_id.expression
    if name == "_lastUpdated":
        return R.last_updated.expression
    kind = param_types[name]
    table = _TABLES[kind]
    if kind == "date":
        column = table.high if desc else table.low
    else:
        column = table.value if kind == "string" else table.code
    agg = func.max(column) if desc else func.min(column)
    return (
        select(agg)
        .where(table.res_type == R.res_type, table.res_id == R.res_id, table.param == name)
        .scalar_subquery()
    )


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
