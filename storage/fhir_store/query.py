"""A parsed FHIR search -> SQL over the FHIR store and its search-index tables.

Each criterion becomes a correlated EXISTS over one index table (OR inside a
criterion, AND across criteria), so every parameter type composes the same way
and the planner can use the (res_type, param, value) indexes. Date comparisons
follow the range semantics of FHIR R4 3.1.1.4.1: the target's [low, high) range
against the search value's.

The statements run over `Tables`: the stored tables, or (`overlaid`) the stored tables with
some resources replaced by versions that are not stored, the FHIR resources derived from the
DICOM index that the index has moved past. A read then sees them without writing them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    FromClause,
    Select,
    String,
    Table,
    and_,
    bindparam,
    column,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from storage.fhir_store.criteria import (
    Criterion,
    DateValue,
    Include,
    QuantityValue,
    RefValue,
    SearchQuery,
    TokenValue,
)
from storage.fhir_store.models import (
    FhirResourceRow,
    SearchDate,
    SearchQuantity,
    SearchReference,
    SearchString,
    SearchToken,
)
from storage.fhir_store.store import IndexRows, StoredResource, normalise
from storage.fhir_store.visibility import Alternatives
from storage.schema import Stamp

_STORED_TABLES: dict[str, Table] = {
    "token": cast(Table, SearchToken.__table__),
    "string": cast(Table, SearchString.__table__),
    "date": cast(Table, SearchDate.__table__),
    "reference": cast(Table, SearchReference.__table__),
    "quantity": cast(Table, SearchQuantity.__table__),
}
_VALUE_COLUMNS: dict[str, tuple[tuple[str, Any], ...]] = {
    "token": (("system", String), ("code", String)),
    "string": (("value", String), ("exact", String)),
    "date": (("low", Stamp), ("high", Stamp)),
    "reference": (("target_type", String), ("target_id", String)),
    "quantity": (("value", Float), ("system", String), ("code", String), ("unit", String)),
}
_KEY_COLUMNS = (("res_type", String), ("res_id", String), ("param", String))
_RESOURCE_COLUMNS = (("res_type", String), ("res_id", String), ("deleted", Boolean), ("last_updated", Stamp))


@dataclass(frozen=True)
class Tables:
    """What the statements select from: `resource` (res_type, res_id, deleted, last_updated) and
    one search-index table per parameter type."""

    resource: FromClause
    index: Mapping[str, FromClause]


STORED = Tables(cast(Table, FhirResourceRow.__table__), _STORED_TABLES)


def overlaid(
    current: Sequence[tuple[StoredResource, IndexRows]],
    params: Collection[str] | None = None,
    *,
    dialect: str,
) -> Tables:
    """The stored tables with each resource of `current` replaced by the version given (body None:
    deleted) and its index rows (of `params` only, when given: those the statements look at);
    STORED when there is none."""
    if not current:
        return STORED
    by_type: dict[str, list[str]] = {}
    for shown_now, _ in current:
        by_type.setdefault(shown_now.res_type, []).append(shown_now.res_id)

    def shown(table: FromClause) -> ColumnElement[bool]:
        return not_(
            or_(*(and_(table.c.res_type == t, table.c.res_id.in_(ids)) for t, ids in by_type.items()))
        )

    stored = STORED.resource
    resource_rows = [(r.res_type, r.res_id, r.body is None, r.last_updated) for r, _ in current]
    resource = _union(
        select(*(stored.c[name] for name, _ in _RESOURCE_COLUMNS)).where(shown(stored)),
        _RESOURCE_COLUMNS,
        resource_rows,
        "resource_now",
        dialect,
    )
    index: dict[str, FromClause] = {}
    for kind, table in _STORED_TABLES.items():
        columns = _KEY_COLUMNS + _VALUE_COLUMNS[kind]
        rows = [
            tuple(row[name] for name, _ in columns)
            for r, index_rows in current
            if r.body is not None
            for row in index_rows.get(kind, ())
            if params is None or row["param"] in params
        ]
        index[kind] = _union(
            select(*(table.c[name] for name, _ in columns)).where(shown(table)),
            columns,
            rows,
            f"{kind}_now",
            dialect,
        )
    return Tables(resource, index)


def _union(
    stored: Select[Any],
    columns: tuple[tuple[str, Any], ...],
    rows: list[tuple[Any, ...]],
    name: str,
    dialect: str,
) -> FromClause:
    if not rows:
        return stored.subquery(name)
    return union_all(stored, _given(columns, rows, name, dialect)).subquery(name)


def _given(
    columns: tuple[tuple[str, Any], ...], rows: list[tuple[Any, ...]], name: str, dialect: str
) -> Select[Any]:
    """`rows` as a table: one JSON parameter, unpacked by the database (one bound parameter,
    so the statement compiles once and its SQL is cached, whatever the number of rows)."""
    encoded = json.dumps(
        [{n: _json_value(v, dialect) for (n, _), v in zip(columns, row, strict=True)} for row in rows]
    )
    param = bindparam(f"{name}_json", encoded, type_=String)
    if dialect == "postgresql":
        given = (
            func.jsonb_to_recordset(sql_cast(param, JSONB))
            .table_valued(*(column(n, t) for n, t in columns))
            .render_derived(name=f"{name}_given", with_types=True)
        )
        return select(*(given.c[n] for n, _ in columns))
    each = func.json_each(param).table_valued("value").alias(f"{name}_given")
    return select(*(type_coerce(func.json_extract(each.c.value, f"$.{n}"), t).label(n) for n, t in columns))


def _json_value(value: Any, dialect: str) -> Any:
    """A datetime as the database compares it: ISO 8601 with offset for PostgreSQL, SQLite's
    stored form (naive UTC) otherwise."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        return utc.isoformat() if dialect == "postgresql" else utc.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def parameters(query: SearchQuery, visible: Alternatives | None = None) -> set[str]:
    """The index parameters the statements of `query`, restricted to `visible`, look at."""
    names = {c.name for c in query.criteria} | {name for name, _ in query.sort}
    names |= {inc.param for inc in query.includes}
    return names | {c.name for alt in visible or () for c in alt}


def matching(
    query: SearchQuery,
    param_types: Mapping[str, str],
    visible: Alternatives | None = None,
    tables: Tables = STORED,
) -> Select[Any]:
    """SELECT res_id of current, non-deleted resources of the type that meet every criterion and
    one of the `visible` alternatives (None: no restriction)."""
    r = tables.resource
    stmt = select(r.c.res_id).where(r.c.res_type == query.res_type, r.c.deleted.is_(False))
    for criterion in query.criteria:
        stmt = stmt.where(_criterion(criterion, param_types, tables))
    if visible is not None:
        stmt = stmt.where(restricted(visible, param_types, tables))
    return stmt


def restricted(
    visible: Alternatives, param_types: Mapping[str, str], tables: Tables = STORED
) -> ColumnElement[bool]:
    """OR of the alternatives, each the AND of its criteria (storage.fhir_store.visibility)."""
    if not visible:
        return false()
    return or_(*(and_(true(), *(_criterion(c, param_types, tables) for c in alt)) for alt in visible))


def ordered(
    stmt: Select[Any], query: SearchQuery, param_types: Mapping[str, str], tables: Tables = STORED
) -> Select[Any]:
    """Apply `_sort` (then res_id, so pages are stable)."""
    keys: list[ColumnElement[Any]] = []
    for name, desc in query.sort:
        expr = _sort_key(name, desc, param_types, tables)
        keys.append((expr.desc() if desc else expr.asc()).nulls_last())
    return stmt.order_by(*keys, tables.resource.c.res_id)


def count(session: Session, stmt: Select[Any]) -> int:
    """How many rows `stmt` selects."""
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def page(
    session: Session, query: SearchQuery, param_types: Mapping[str, str], stmt: Select[Any], tables: Tables
) -> list[str]:
    """The ids of the requested page of `stmt`, in `_sort` order."""
    ordered_stmt = ordered(stmt, query, param_types, tables).limit(query.count).offset(query.offset)
    return list(session.scalars(ordered_stmt))


def visible_ids(
    session: Session,
    res_type: str,
    ids: Sequence[str],
    *,
    visible: Alternatives,
    param_types: Mapping[str, str],
    tables: Tables = STORED,
) -> set[str]:
    """Those of `ids` (resources of `res_type`) that one of the `visible` alternatives allows."""
    r = tables.resource
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        stmt = select(r.c.res_id).where(
            r.c.res_type == res_type,
            r.c.res_id.in_(ids[start : start + 500]),
            restricted(visible, param_types, tables),
        )
        found.update(session.scalars(stmt))
    return found


def included(
    session: Session, res_type: str, ids: Sequence[str], includes: Sequence[Include], tables: Tables = STORED
) -> list[tuple[str, str]]:
    """(type, id) of what the `_include`s of the matches `ids` point at and of what points at them
    (`_revinclude`), first seen first."""
    ref = tables.index["reference"]
    keys: dict[tuple[str, str], None] = {}
    for inc in includes:
        if inc.reverse:  # resources of the source type whose parameter points at a match
            stmt = select(ref.c.res_type, ref.c.res_id).where(
                ref.c.res_type == inc.source_type,
                ref.c.param == inc.param,
                ref.c.target_type == res_type,
                ref.c.target_id.in_(ids),
            )
        else:
            stmt = select(ref.c.target_type, ref.c.target_id).where(
                ref.c.res_type == res_type, ref.c.res_id.in_(ids), ref.c.param == inc.param
            )
            if inc.target_type:
                stmt = stmt.where(ref.c.target_type == inc.target_type)
        for kind, rid in session.execute(stmt.order_by(*stmt.selected_columns)):
            keys.setdefault((kind, rid), None)
    return list(keys)


def _criterion(c: Criterion, param_types: Mapping[str, str], tables: Tables) -> ColumnElement[bool]:
    r = tables.resource
    if c.name == "_id":
        ids = [v.code for v in c.values if isinstance(v, TokenValue) and v.code is not None]
        cond = r.c.res_id.in_(ids)
        return not_(cond) if c.modifier == "not" else cond
    if c.name == "_lastUpdated":
        return or_(*(_instant(v, r) for v in c.values if isinstance(v, DateValue)))
    if c.type == "missing":
        present = _exists(tables.index[param_types[c.name]], r, c.name)
        return not_(present) if c.values[0] else present
    table = tables.index[c.type]
    if c.type == "token" and c.modifier == "not":
        tokens = (_token(v, table) for v in c.values if isinstance(v, TokenValue))
        return not_(or_(*(_exists(table, r, c.name, cond) for cond in tokens)))
    return or_(*(_exists(table, r, c.name, _value(c, v, table)) for v in c.values))


def _exists(
    table: FromClause, r: FromClause, param: str, cond: ColumnElement[bool] | None = None
) -> ColumnElement[bool]:
    inner = select(literal(1)).where(
        table.c.res_type == r.c.res_type, table.c.res_id == r.c.res_id, table.c.param == param
    )
    if cond is not None:
        inner = inner.where(cond)
    return exists(inner)


def _value(c: Criterion, v: Any, table: FromClause) -> ColumnElement[bool]:
    if isinstance(v, TokenValue):
        return _token(v, table)
    if isinstance(v, DateValue):
        return _date(v, table)
    if isinstance(v, QuantityValue):
        return _quantity(v, table)
    if isinstance(v, RefValue):
        cond = table.c.target_id == v.target_id
        return and_(cond, table.c.target_type == v.target_type) if v.target_type else cond
    if c.modifier == "exact":
        return table.c.exact == str(v)
    pattern = _like(normalise(str(v)))
    if c.modifier == "contains":
        return table.c.value.like(f"%{pattern}%", escape="\\")
    return table.c.value.like(f"{pattern}%", escape="\\")


def _token(v: TokenValue, table: FromClause) -> ColumnElement[bool]:
    conds: list[ColumnElement[bool]] = []
    if v.code is not None:
        conds.append(table.c.code == v.code)
    if v.system == "":
        conds.append(table.c.system.is_(None))
    elif v.system is not None:
        conds.append(table.c.system == v.system)
    return and_(*conds) if conds else true()


def _date(v: DateValue, table: FromClause) -> ColumnElement[bool]:
    low, high = table.c.low, table.c.high
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


def _quantity(v: QuantityValue, table: FromClause) -> ColumnElement[bool]:
    """The stored value (a point) against the search number: `eq` / `ne` / `ap` with the range its
    precision implies (R4 3.1.1.4.2: 5.4 means [5.35, 5.45)), the others against the number."""
    value = table.c.value
    match v.prefix:
        case "eq" | "ap":
            cond: ColumnElement[bool] = and_(value >= v.low, value < v.high)
        case "ne":
            cond = not_(and_(value >= v.low, value < v.high))
        case "gt" | "sa":
            cond = value > v.number
        case "lt" | "eb":
            cond = value < v.number
        case "ge":
            cond = value >= v.number
        case "le":
            cond = value <= v.number
        case _:
            cond = false()
    if v.system:
        cond = and_(cond, table.c.system == v.system)
    if v.code:  # a code alone matches the coded unit or the human one (R4 3.1.1.4.7)
        unit = table.c.code == v.code if v.system else or_(table.c.code == v.code, table.c.unit == v.code)
        cond = and_(cond, unit)
    return cond


def _instant(v: DateValue, r: FromClause) -> ColumnElement[bool]:
    """`_lastUpdated` against the stored instant (a point, not a range)."""
    t = r.c.last_updated
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


def _sort_key(name: str, desc: bool, param_types: Mapping[str, str], tables: Tables) -> ColumnElement[Any]:
    r = tables.resource
    if name == "_id":
        return cast(ColumnElement[Any], r.c.res_id)
    if name == "_lastUpdated":
        return cast(ColumnElement[Any], r.c.last_updated)
    kind = param_types[name]
    table = tables.index[kind]
    if kind == "date":
        key = table.c.high if desc else table.c.low
    elif kind == "quantity":
        key = table.c.value
    else:
        key = table.c.value if kind == "string" else table.c.code
    agg = func.max(key) if desc else func.min(key)
    return (
        select(agg)
        .where(table.c.res_type == r.c.res_type, table.c.res_id == r.c.res_id, table.c.param == name)
        .scalar_subquery()
    )


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
