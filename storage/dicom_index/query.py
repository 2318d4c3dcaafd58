"""C-FIND (and QIDO-RS) over the DICOM index: a find plan -> pages of match records.

The SQL only narrows: every condition becomes a predicate that keeps all rows that could match
(exact equality, a date range, `IN` for value lists, `LIKE` on a literal run for names and
wildcards), and the caller checks each record with `mapping.dicom.matching`, the one definition
of a match. Pages follow the level's primary key, so a long answer is read a page at a time and
a cancelled one stops reading. A page's statement is built once per shape of query and run again
with each query's values (`_prepared`).

A record is a dict of the `field`s of `mapping.dicom.query_keys.KEYS`, plus `pk`, and `charset`
(the Specific Character Set of the entity's instances, as stored) when the plan wants it: C-FIND
does, QIDO-RS and the retrieves do not, and are spared its query per page. It is looked up for
the records holding text beyond ASCII only ('' for the others: ASCII needs no character set).
Studies, series and patients without instances (all replaced away) are not matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, false, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, aliased

from mapping.dicom.matching import (
    AnyOf,
    Condition,
    Range,
    Single,
    Universal,
    Wildcard,
    like_pattern,
    literal_hint,
)
from mapping.dicom.query_keys import LEVELS, FindPlan, Key, Level
from storage.dicom_index.models import InstanceRow, PatientRow, SeriesRow, StudyRow

Record = dict[str, Any]
Column = InstrumentedAttribute[Any]

_COLUMNS: Mapping[str, Column] = {
    "patient_name": PatientRow.name,
    "patient_id": PatientRow.patient_id,
    "birth_date": PatientRow.birth_date,
    "sex": PatientRow.sex,
    "study_uid": StudyRow.study_uid,
    "study_date": StudyRow.study_date,
    "study_time": StudyRow.study_time,
    "accession": StudyRow.accession,
    "study_id": StudyRow.study_id,
    "study_description": StudyRow.description,
    "referring_physician": StudyRow.referring_physician,
    "modalities": StudyRow.modalities,
    "tz_offset": StudyRow.tz_offset,
    "study_series": StudyRow.num_series,
    "study_instances": StudyRow.num_instances,
    "series_uid": SeriesRow.series_uid,
    "modality": SeriesRow.modality,
    "series_number": SeriesRow.series_number,
    "series_description": SeriesRow.description,
    "body_part": SeriesRow.body_part,
    "laterality": SeriesRow.laterality,
    "series_date": SeriesRow.series_date,
    "series_time": SeriesRow.series_time,
    "performing_physician": SeriesRow.performing_physician,
    "series_instances": SeriesRow.num_instances,
    "sop_uid": InstanceRow.sop_uid,
    "sop_class_uid": InstanceRow.sop_class_uid,
    "instance_number": InstanceRow.instance_number,
    "rows": InstanceRow.rows,
    "columns": InstanceRow.columns,
    "number_of_frames": InstanceRow.number_of_frames,
    # not keys: what a retrieve needs of the instances it sends
    "blob_key": InstanceRow.blob_key,
    "transfer_syntax": InstanceRow.transfer_syntax_uid,
}
_PRIMARY = {"PATIENT": PatientRow.pk, "STUDY": StudyRow.pk, "SERIES": SeriesRow.pk, "IMAGE": InstanceRow.pk}
_PATIENT_COUNTS = ("patient_studies", "patient_series", "patient_instances")
_NUMBERS = frozenset({"series_number", "instance_number", "rows", "columns", "number_of_frames"})
_NAMES = frozenset({"patient_name", "referring_physician", "performing_physician"})
_MAX_LIST = 1000  # values of one list in one IN; longer lists narrow nothing in SQL
_ESCAPE = "!"


def page(
    conn: Connection,
    plan: FindPlan,
    *,
    after: int,
    size: int,
    prepared: tuple[Select[Any], dict[str, Any]] | None = None,
) -> list[Record]:
    """Up to `size` candidate records of `plan.level` whose primary key is above `after`, in key
    order, with the computed fields the plan needs; `prepared`: `prepared(plan)` (the pages of
    one query share it)."""
    stmt, params = prepared or _prepared(plan.level, plan.conditions)
    result = conn.execute(stmt, params | {"after": after, "size": size})  # Core: no ORM work
    keys = tuple(result.keys())
    records = [dict(zip(keys, row, strict=True)) for row in result.fetchall()]
    if records:
        _add_computed(conn, plan.level, plan.fields, records)
    return records


def prepared(plan: FindPlan) -> tuple[Select[Any], dict[str, Any]]:
    """The page statement of `plan` and its values (`page`'s `prepared`)."""
    return _prepared(plan.level, plan.conditions)


Prepared = tuple[Select[Any], list[str]]  # a page's statement, the keys of its narrowing's values
_PREPARED: dict[tuple[object, ...], Prepared] = {}
_MAX_PREPARED = 512  # statements kept (all forgotten when there are more)


def _prepared(
    level: Level, conditions: Mapping[str, tuple[Key, Condition]]
) -> tuple[Select[Any], dict[str, Any]]:
    """The page statement of a query of this shape (level, and each narrowing predicate without
    its values: SQLAlchemy's cache key of the predicate alone), built once, and this query's
    values for it. SQLAlchemy works out the cache key of every statement it runs, walking its
    ~20 labelled columns and joins: ~1 ms a page, more than the SQL; a statement run again keeps
    the key it worked out."""
    narrowings = [_narrowing(field, key, cond, level) for field, (key, cond) in conditions.items()]
    keys = [n._generate_cache_key() for n in narrowings]  # the predicate's shape, its values
    if any(k is None for k in keys):  # not cacheable: built for this query alone
        return _statement(level, narrowings), {}
    shape = (level, *(k.key for k in keys if k is not None))
    prepared = _PREPARED.get(shape)
    if prepared is None:
        prepared = (_statement(level, narrowings), [b.key for k in keys if k for b in k.bindparams])
        if len(_PREPARED) >= _MAX_PREPARED:
            _PREPARED.clear()
        _PREPARED[shape] = prepared
    stmt, names = prepared
    values = [b.effective_value for k in keys if k for b in k.bindparams]
    return stmt, dict(zip(names, values, strict=True))


def _statement(level: Level, narrowings: Sequence[ColumnElement[bool]]) -> Select[Any]:
    primary = _PRIMARY[level]
    stmt = _base(level).where(primary > bindparam("after")).order_by(primary).limit(bindparam("size"))
    for narrowing in narrowings:
        stmt = stmt.where(narrowing)
    return stmt


@cache
def _base(level: Level) -> Select[*tuple[Any, ...]]:
    """The level's columns, joins and has-instances condition (built once per level: a Select
    is immutable, each query adds to a copy)."""
    depth = LEVELS.index(level)
    columns = [c.label(f) for f, c in _COLUMNS.items() if _owner_depth(c) <= depth]
    stmt = select(_PRIMARY[level].label("pk"), PatientRow.pk.label("patient_pk"), *columns)
    if level == "PATIENT":
        has_instances = select(StudyRow.pk).where(
            StudyRow.patient_pk == PatientRow.pk, StudyRow.num_instances > 0
        )
        return stmt.select_from(PatientRow).where(has_instances.exists())
    stmt = stmt.select_from(StudyRow).join(PatientRow, PatientRow.pk == StudyRow.patient_pk)
    if level == "STUDY":
        return stmt.where(StudyRow.num_instances > 0)
    stmt = stmt.join(SeriesRow, SeriesRow.study_pk == StudyRow.pk)
    if level == "SERIES":
        return stmt.where(SeriesRow.num_instances > 0)
    return stmt.join(InstanceRow, InstanceRow.series_pk == SeriesRow.pk)


def _owner_depth(column: Column) -> int:
    table = column.table.name
    return {"patient": 0, "study": 1, "series": 2, "instance": 3}[table]


def _narrowing(field: str, key: Key, cond: Condition, level: Level) -> ColumnElement[bool]:
    """A predicate that keeps every row that can match `cond` (true when SQL cannot narrow)."""
    if field == "modalities":
        return _holding(StudyRow.modalities, cond)
    if field == "sop_classes":
        return _exists_in_study("sop_class_uid", cond)
    column = _COLUMNS.get(field)
    if column is None:
        return true()
    return _predicate(column, cond, name=field in _NAMES, number=field in _NUMBERS)


def _predicate(column: Column, cond: Condition, *, name: bool, number: bool) -> ColumnElement[bool]:
    if isinstance(cond, Universal):
        return true()
    if isinstance(cond, Range):
        if key_is_time(column):
            return column != ""
        parts = [column != ""]
        if cond.low is not None:
            parts.append(column >= cond.low)
        if cond.high is not None:
            parts.append(column <= cond.high)
        return and_(*parts)
    if isinstance(cond, AnyOf):
        if not name and all(isinstance(o, Single) for o in cond.options) and len(cond.options) <= _MAX_LIST:
            singles = [o.value for o in cond.options if isinstance(o, Single)]
            if number:
                ints = [int(v) for v in singles if v.isdigit()]
                return column.in_(ints) if ints else false()
            return column.in_(singles)
        return or_(*(_predicate(column, o, name=name, number=number) for o in cond.options))
    if name:
        hint = literal_hint(cond)
        if hint is None or not hint.isascii():
            return true()  # SQLite folds ASCII only: narrowing on other letters could drop a match
        return func.lower(column).like(f"%{like_pattern(hint.lower(), _ESCAPE)}%", escape=_ESCAPE)
    if isinstance(cond, Single):
        if number:
            return column == int(cond.value) if cond.value.isdigit() else false()
        if key_is_time(column):
            return true()  # '1200' and '12:00' are one time; the check decides
        return column == cond.value
    if isinstance(cond, Wildcard):
        return column.like(like_pattern(cond.pattern, _ESCAPE), escape=_ESCAPE)
    return true()


def key_is_time(column: Column) -> bool:
    return column.key in ("study_time", "series_time")


def _holding(column: Column, cond: Condition) -> ColumnElement[bool]:
    """A '\\'-joined list (ModalitiesInStudy, kept from the study's series by the writer) that
    can hold a value matching `cond`: it contains the literal run every match contains. Read on
    the study's row: a correlated look at every study's series took ~1 ms a page."""
    if isinstance(cond, AnyOf):
        return or_(*(_holding(column, option) for option in cond.options))
    hint = literal_hint(cond)
    if hint is None:
        return true()
    return column.like(f"%{like_pattern(hint, _ESCAPE)}%", escape=_ESCAPE)


_IN_STUDY = (aliased(SeriesRow), aliased(InstanceRow))  # built once: an alias costs ~1 ms a query


def _exists_in_study(attribute: str, cond: Condition) -> ColumnElement[bool]:
    """A series (`modality`) or instance (`sop_class_uid`) of the study matches: SOPClassesInStudy
    (no column holds the list). The inner tables are aliases: at SERIES and IMAGE level the outer
    query has its own."""
    series, instance = _IN_STUDY
    inner = select(series.pk).where(series.study_pk == StudyRow.pk, series.num_instances > 0)
    if attribute == "sop_class_uid":
        inner = inner.join(instance, instance.series_pk == series.pk)
        column = instance.sop_class_uid
    else:
        column = series.modality
    return inner.where(_predicate(column, cond, name=False, number=False)).correlate(StudyRow).exists()


def _add_computed(conn: Connection, level: Level, fields: Iterable[str], records: list[Record]) -> None:
    """The fields no column holds that the plan wants, for this page's records: the SOP classes
    of each study, the counts of each patient, the character set of each entity's instances."""
    wanted = set(fields)
    owner = {"PATIENT": StudyRow.patient_pk, "STUDY": StudyRow.pk, "SERIES": SeriesRow.pk}
    if "charset" in wanted:
        # only text beyond ASCII needs a character set named: the rest go without the query
        texts = [r for r in records if not "".join([v for v in r.values() if type(v) is str]).isascii()]
        for r in records:
            r["charset"] = ""
        if texts and level == "IMAGE":
            pks = [r["pk"] for r in texts]
            stmt = select(InstanceRow.pk, InstanceRow.character_set).where(InstanceRow.pk.in_(pks))
            charsets = _pairs(conn, stmt)
            for r in texts:
                r["charset"] = charsets.get(r["pk"], "")
        elif texts:
            _charsets(conn, owner[level], level, texts)
    if "sop_classes" in wanted and level != "PATIENT":
        study_pks = _study_pks(conn, level, records)
        classes: dict[int, set[str]] = {}
        stmt = (
            select(SeriesRow.study_pk, InstanceRow.sop_class_uid)
            .join(InstanceRow, InstanceRow.series_pk == SeriesRow.pk)
            .where(SeriesRow.study_pk.in_(set(study_pks.values())))
            .distinct()
        )
        for study_pk, sop_class in conn.execute(stmt):
            classes.setdefault(study_pk, set()).add(sop_class)
        for r in records:
            r["sop_classes"] = "\\".join(sorted(classes.get(study_pks[r["pk"]], ())))
    if wanted & set(_PATIENT_COUNTS):
        _patient_counts(conn, records)


def _charsets(conn: Connection, owner: Column, level: Level, records: list[Record]) -> None:
    """One Specific Character Set of each record's instances (the greatest: mixed sets are rare,
    and `response_charset` falls back to UTF-8 when the one named cannot hold a value)."""
    pks = [r["pk"] for r in records]
    stmt = (
        select(owner, func.max(InstanceRow.character_set))
        .select_from(InstanceRow)
        .join(SeriesRow, SeriesRow.pk == InstanceRow.series_pk)
    )
    if level in ("STUDY", "PATIENT"):
        stmt = stmt.join(StudyRow, StudyRow.pk == SeriesRow.study_pk)
    stmt = stmt.where(owner.in_(pks)).group_by(owner)
    found = _pairs(conn, stmt)
    for r in records:
        r["charset"] = found.get(r["pk"]) or ""


def _study_pks(conn: Connection, level: Level, records: Sequence[Record]) -> dict[int, int]:
    """Each record's study primary key."""
    pks = [r["pk"] for r in records]
    if level == "STUDY":
        return {pk: pk for pk in pks}
    if level == "SERIES":
        stmt = select(SeriesRow.pk, SeriesRow.study_pk).where(SeriesRow.pk.in_(pks))
    else:
        stmt = (
            select(InstanceRow.pk, SeriesRow.study_pk)
            .join(SeriesRow, SeriesRow.pk == InstanceRow.series_pk)
            .where(InstanceRow.pk.in_(pks))
        )
    return _pairs(conn, stmt)


def _patient_counts(conn: Connection, records: list[Record]) -> None:
    """NumberOfPatientRelatedStudies / Series / Instances of each record's patient."""
    pks = {r["patient_pk"] for r in records}
    stmt = (
        select(
            StudyRow.patient_pk,
            func.count(StudyRow.pk),
            func.coalesce(func.sum(StudyRow.num_series), 0),
            func.coalesce(func.sum(StudyRow.num_instances), 0),
        )
        .where(StudyRow.patient_pk.in_(pks), StudyRow.num_instances > 0)
        .group_by(StudyRow.patient_pk)
    )
    counts: dict[int, tuple[int, int, int]] = {
        pk: (int(a), int(b), int(c)) for pk, a, b, c in conn.execute(stmt)
    }
    for r in records:
        r.update(zip(_PATIENT_COUNTS, counts.get(r["patient_pk"], (0, 0, 0)), strict=True))


def _pairs(conn: Connection, stmt: Select[Any, Any]) -> dict[Any, Any]:
    """A two-column result as a dict (a Result has `keys()`: `dict(result)` would take it for
    a mapping)."""
    return {a: b for a, b in conn.execute(stmt)}
