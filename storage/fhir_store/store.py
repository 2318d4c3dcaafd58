"""The versioned FHIR resource store: current version, retained history, search-index rows.

Versions: every change of content makes a new `versionId`. A version written while
its source is still changing (a study that is still receiving instances) is
*provisional*: when the next version supersedes it before the source settles, the
provisional one is dropped from history. So a 1,000-instance study read 50 times
while it arrives keeps one version, not 50; version ids stay monotonic, and the
content behind a version id never changes (ETags stay truthful).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from mapping.fhir import json_text
from mapping.fhir.dates import instant, value_range
from mapping.fhir.search_params import Period, Quantity, Ref, Token, index_values
from storage.fhir_store.models import (
    FhirResourceRow,
    FhirVersionRow,
    SearchDate,
    SearchQuantity,
    SearchReference,
    SearchString,
    SearchToken,
)
from storage.prepared import PreparedInsert, Writes, insert_all

Json = dict[str, Any]
IndexRows = dict[str, list[dict[str, Any]]]  # parameter type -> column values of its index rows
_SEARCH_TABLES = (SearchToken, SearchString, SearchDate, SearchReference, SearchQuantity)
_TABLE_OF: dict[str, Any] = {
    "token": SearchToken,
    "string": SearchString,
    "date": SearchDate,
    "reference": SearchReference,
    "quantity": SearchQuantity,
}

# Prepared once: the ORM's bulk-insert path cost more than the statements it ran, and
# `Connection.execute` more than the driver (`storage.prepared`)
_VERSION_COLUMNS = ("res_type", "res_id", "version_id", "last_updated", "body")
_INSERT_RESOURCE = PreparedInsert(
    insert(cast(Table, FhirResourceRow.__table__)), (*_VERSION_COLUMNS, "deleted", "provisional")
)
_INSERT_VERSION = PreparedInsert(insert(cast(Table, FhirVersionRow.__table__)), _VERSION_COLUMNS)
_INDEX_COLUMNS = {
    "token": ("system", "code"),
    "string": ("value", "exact"),
    "date": ("low", "high"),
    "reference": ("target_type", "target_id"),
    "quantity": ("value", "system", "code", "unit"),
}
_INSERT_INDEX = {
    kind: PreparedInsert(
        insert(cast(Table, model.__table__)), ("res_type", "res_id", "param", *_INDEX_COLUMNS[kind])
    )
    for kind, model in _TABLE_OF.items()
}
_CLEAR_INDEX = [
    delete(cast(Table, model.__table__)).where(
        model.__table__.c.res_type == bindparam("t"), model.__table__.c.res_id == bindparam("i")
    )
    for model in _SEARCH_TABLES
]


@dataclass(frozen=True)
class StoredResource:
    res_type: str
    res_id: str
    version_id: int
    last_updated: datetime
    body: Json | None  # None: deleted
    provisional: bool = False  # dropped from history when superseded before its source settles

    def to_json(self) -> Json:
        """The resource as served: body plus meta.versionId / meta.lastUpdated."""
        if self.body is None:
            raise ValueError("a deleted version has no body")
        meta = {
            **self.body.get("meta", {}),
            "versionId": str(self.version_id),
            "lastUpdated": instant(self.last_updated),
        }
        out = {"resourceType": self.body["resourceType"], "id": self.res_id, "meta": meta}
        out.update((k, v) for k, v in self.body.items() if k not in ("resourceType", "id", "meta"))
        return out

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


def normalise(text: str) -> str:
    """Case- and accent-insensitive form used by string search (FHIR R4 3.1.1.4.6)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


class FhirStore:
    """Reads and writes resources inside a caller's transaction."""

    def __init__(self, site_zone: tzinfo) -> None:
        self._zone = site_zone

    def put(
        self,
        session: Session,
        resource: Json,
        *,
        now: datetime,
        provisional: bool = False,
        version_id: int | None = None,
        new: bool = False,
        index_rows: IndexRows | None = None,
        also: Writes | None = None,
    ) -> StoredResource:
        """Store `resource` as the new current version unless its content is unchanged; its
        version id is `version_id` when given (it must be higher), else the next one. `new`: the
        caller has just made up its id, so there is nothing to read first (were there, the
        insert would fail on the primary key and the transaction run again). `index_rows`: the
        body's, when the caller has them already. `also`: the caller's writes, run first (for a new
        resource in the same round trip as its inserts, on PostgreSQL)."""
        body = without_version_meta(resource)
        text = _dump(body)
        res_type, res_id = body["resourceType"], body["id"]
        if also and not new:
            insert_all(session.connection(), also)
            also = None
        row = None if new else session.get(FhirResourceRow, (res_type, res_id), with_for_update=True)
        if row is not None and not row.deleted and row.body == text:
            if row.provisional and not provisional:
                row.provisional = False
            return _stored(row)
        if row is None:  # the first version: plain Core inserts, no unit of work
            version = max(1, version_id or 0)
            values = {"res_type": res_type, "res_id": res_id, "version_id": version, "last_updated": now}
            resource_row = values | {"deleted": False, "provisional": provisional, "body": text}
            rows = index_rows if index_rows is not None else self.index_rows(body)
            insert_all(
                session.connection(),
                [
                    *(also or ()),
                    (_INSERT_RESOURCE, [resource_row]),
                    (_INSERT_VERSION, [values | {"body": text}]),
                    *((_INSERT_INDEX[kind], of_kind) for kind, of_kind in rows.items() if of_kind),
                ],
            )
            return StoredResource(res_type, res_id, version, now, json_text.loads(text), provisional)
        _advance(session, row, text, now=now, provisional=provisional, version_id=version_id)
        self._reindex(session, body, index_rows)
        return _stored(row)

    def delete(
        self, session: Session, res_type: str, res_id: str, *, now: datetime, version_id: int | None = None
    ) -> None:
        """A deletion version; the resource reads as gone (410) and leaves search. A resource
        never stored gets a deletion as its first version."""
        row = session.get(FhirResourceRow, (res_type, res_id), with_for_update=True)
        if row is not None and row.deleted:
            return
        if row is None:
            row = FhirResourceRow(res_type=res_type, res_id=res_id, version_id=0, last_updated=now, body="")
            session.add(row)
        _advance(session, row, None, now=now, provisional=False, version_id=version_id)
        _clear_index(session, res_type, res_id)

    def settle(self, session: Session, res_type: str, res_id: str) -> None:
        """The source stopped changing: the current version becomes a permanent one."""
        row = session.get(FhirResourceRow, (res_type, res_id))
        if row is not None:
            row.provisional = False

    def provisional_ids(self, session: Session, res_type: str, *, limit: int | None = None) -> list[str]:
        """Ids of the resources of `res_type` whose current version is provisional."""
        stmt = select(FhirResourceRow.res_id).where(
            FhirResourceRow.res_type == res_type, FhirResourceRow.provisional.is_(True)
        )
        return list(session.scalars(stmt.limit(limit)))

    def read(self, session: Session, res_type: str, res_id: str) -> StoredResource | None:
        """The current version (body None when it was deleted), None when it never existed."""
        row = session.get(FhirResourceRow, (res_type, res_id))
        return _stored(row) if row is not None else None

    def read_many(self, session: Session, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Current versions of `keys`, in the order given, skipping missing and deleted ones."""
        if not keys:
            return []
        by_key: dict[tuple[str, str], StoredResource] = {}
        for res_type in {k[0] for k in keys}:
            ids = [k[1] for k in keys if k[0] == res_type]
            for start in range(0, len(ids), 500):
                rows = session.scalars(
                    select(FhirResourceRow).where(
                        FhirResourceRow.res_type == res_type,
                        FhirResourceRow.res_id.in_(ids[start : start + 500]),
                        FhirResourceRow.deleted.is_(False),
                    )
                )
                by_key.update(((r.res_type, r.res_id), _stored(r)) for r in rows)
        return [by_key[k] for k in keys if k in by_key]

    def vread(self, session: Session, res_type: str, res_id: str, version_id: int) -> StoredResource | None:
        row = session.get(FhirVersionRow, (res_type, res_id, version_id))
        if row is None:
            return None
        return StoredResource(
            res_type,
            res_id,
            row.version_id,
            row.last_updated,
            json_text.loads(row.body) if row.body is not None else None,
        )

    def history(self, session: Session, res_type: str, res_id: str) -> list[StoredResource]:
        """Retained versions, newest first."""
        rows = session.scalars(
            select(FhirVersionRow)
            .where(
                FhirVersionRow.res_type == res_type,
                FhirVersionRow.res_id == res_id,
            )
            .order_by(FhirVersionRow.version_id.desc())
        )
        return [
            StoredResource(
                res_type,
                res_id,
                r.version_id,
                r.last_updated,
                json_text.loads(r.body) if r.body is not None else None,
            )
            for r in rows
        ]

    def index_rows(self, body: Json) -> IndexRows:
        """The search-index rows of `body` (the columns of search_token, search_string, ...)."""
        res_type, res_id = body["resourceType"], body["id"]
        rows: IndexRows = {kind: [] for kind in _TABLE_OF}
        seen: set[tuple[Any, ...]] = set()
        for name, kind, value in index_values(body):
            key = (name, kind, value)
            if key in seen:
                continue
            seen.add(key)
            common = {"res_type": res_type, "res_id": res_id, "param": name}
            if kind == "token" and isinstance(value, Token):
                rows[kind].append(common | {"system": value.system, "code": value.code[:255]})
            elif kind == "string" and isinstance(value, str):
                rows[kind].append(common | {"value": normalise(value)[:255], "exact": value[:255]})
            elif kind == "date" and isinstance(value, str):
                span = value_range(value, self._zone)
                if span is not None:
                    rows[kind].append(common | {"low": span[0], "high": span[1]})
            elif kind == "date" and isinstance(value, Period):
                span = self._period_range(value)
                if span is not None:
                    rows[kind].append(common | {"low": span[0], "high": span[1]})
            elif kind == "reference" and isinstance(value, Ref):
                rows[kind].append(common | {"target_type": value.target_type, "target_id": value.target_id})
            elif kind == "quantity" and isinstance(value, Quantity):
                number = _finite(value.value)
                if number is not None:
                    rows[kind].append(
                        common
                        | {
                            "value": number,
                            "system": _cut(value.system),
                            "code": _cut(value.code),
                            "unit": _cut(value.unit),
                        }
                    )
        return rows

    def _period_range(self, period: Period) -> tuple[datetime, datetime] | None:
        """A Period's range: its start's low to its end's high; an open end reaches the calendar's."""
        start = value_range(period.start, self._zone) if period.start else None
        end = value_range(period.end, self._zone) if period.end else None
        if start is None and end is None:
            return None
        low = start[0] if start else datetime.min.replace(tzinfo=UTC)
        high = end[1] if end else datetime.max.replace(tzinfo=UTC)
        return low, high

    def _reindex(self, session: Session, body: Json, rows: IndexRows | None, *, new: bool = False) -> None:
        """Replace the resource's search rows (a new resource has none to clear): one INSERT of
        many rows per parameter type."""
        if not new:
            _clear_index(session, body["resourceType"], body["id"])
        conn = session.connection()
        for kind, of_kind in (rows if rows is not None else self.index_rows(body)).items():
            if len(of_kind) == 1:
                _INSERT_INDEX[kind].one(conn, of_kind[0])
            else:
                _INSERT_INDEX[kind].many(conn, of_kind)


def _advance(
    session: Session,
    row: FhirResourceRow,
    text: str | None,
    *,
    now: datetime,
    provisional: bool,
    version_id: int | None = None,
) -> None:
    """Make `text` (None: a deletion) the next version; a provisional current version that is
    superseded before its source settled is not retained."""
    if row.provisional:
        session.execute(
            delete(FhirVersionRow).where(
                FhirVersionRow.res_type == row.res_type,
                FhirVersionRow.res_id == row.res_id,
                FhirVersionRow.version_id == row.version_id,
            )
        )
    row.version_id = max(row.version_id + 1, version_id or 0)
    row.last_updated = max(now, row.last_updated)
    row.deleted, row.provisional = text is None, provisional
    if text is not None:
        row.body = text
    session.add(
        FhirVersionRow(
            res_type=row.res_type,
            res_id=row.res_id,
            version_id=row.version_id,
            last_updated=row.last_updated,
            body=text,
        )
    )


def _clear_index(session: Session, res_type: str, res_id: str) -> None:
    conn = session.connection()
    for statement in _CLEAR_INDEX:
        conn.execute(statement, {"t": res_type, "i": res_id})


def without_version_meta(resource: Json) -> Json:
    """The body as stored: `meta` without versionId and lastUpdated."""
    body = dict(resource)
    meta = {k: v for k, v in (body.pop("meta", None) or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        body["meta"] = meta
    return body


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _cut(text: str | None) -> str | None:
    return text[:255] if text is not None else None


def _dump(body: Json) -> str:
    return json_text.dumps(body)


def _stored(row: FhirResourceRow) -> StoredResource:
    return StoredResource(
        row.res_type,
        row.res_id,
        row.version_id,
        row.last_updated,
        None if row.deleted else json_text.loads(row.body),
        row.provisional,
    )
