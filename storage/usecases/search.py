"""Search: read, vread, history and search over the FHIR store.

Resources derived from the DICOM index are published before they are read, so a
read or a search always reflects every instance committed so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mapping.fhir.search_params import REGISTRY
from storage.clock import utcnow
from storage.db import Database
from storage.errors import Gone, NotFound
from storage.fhir_store.criteria import Criterion, SearchQuery, parse_search
from storage.fhir_store.models import FhirResourceRow, SearchReference
from storage.fhir_store.query import matching, ordered, restricted
from storage.fhir_store.store import FhirStore, StoredResource
from storage.fhir_store.visibility import Visibility
from storage.usecases.publish import DERIVED_TYPES, Publisher

SUPPORTED_TYPES = tuple(REGISTRY)


@dataclass(frozen=True)
class SearchResult:
    query: SearchQuery
    total: int | None
    matches: list[StoredResource]
    included: list[StoredResource]


class Search:
    def __init__(
        self,
        db: Database,
        store: FhirStore,
        publisher: Publisher,
        *,
        site_zone: tzinfo,
        default_count: int = 20,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db, self._store, self._publisher = db, store, publisher
        self._zone, self._default_count, self._now = site_zone, default_count, now
        self._types = {t: {n: p.type for n, p in params.items()} for t, params in REGISTRY.items()}

    def parse(self, res_type: str, pairs: list[tuple[str, str]], *, lenient: bool = False) -> SearchQuery:
        _supported(res_type)
        return parse_search(
            res_type,
            pairs,
            site_zone=self._zone,
            lenient=lenient,
            default_count=self._default_count,
            now=self._now(),
        )

    def criteria(self, res_type: str, pairs: tuple[tuple[str, str], ...]) -> tuple[Criterion, ...]:
        """Search criteria from parameter pairs (Invalid when they are not a valid search): how
        granular scopes and compartments become restrictions (smart_auth.access)."""
        return self.parse(res_type, list(pairs)).criteria

    def read(self, res_type: str, res_id: str, *, visibility: Visibility) -> StoredResource:
        """The current version; NotFound when it never existed or the caller may not see it (the
        same answer, so that existence does not leak), Gone when it was deleted."""
        _supported(res_type)
        self._fresh(res_type, res_id)
        with self._db.read() as session:
            self._visible(session, res_type, res_id, visibility)
            found = self._store.read(session, res_type, res_id)
        if found is None:
            raise NotFound(f"{res_type}/{res_id} is not known")
        if found.body is None:
            raise Gone(f"{res_type}/{res_id} was deleted")
        return found

    def vread(self, res_type: str, res_id: str, version_id: str, *, visibility: Visibility) -> StoredResource:
        _supported(res_type)
        self._fresh(res_type, res_id)
        with self._db.read() as session:
            self._visible(session, res_type, res_id, visibility)
            if not version_id.isdigit():
                raise NotFound("no such version")
            found = self._store.vread(session, res_type, res_id, int(version_id))
            if found is None:
                current = self._store.read(session, res_type, res_id)
        if found is None:
            raise NotFound("no such version" if current is not None else f"{res_type}/{res_id} is not known")
        if found.body is None:
            raise Gone(f"version {version_id} of {res_type}/{res_id} is a deletion")
        return found

    def history(self, res_type: str, res_id: str, *, visibility: Visibility) -> list[StoredResource]:
        """Retained versions, newest first (provisional versions superseded while a study was
        still arriving are not retained)."""
        _supported(res_type)
        self._fresh(res_type, res_id)
        with self._db.read() as session:
            self._visible(session, res_type, res_id, visibility)
            versions = self._store.history(session, res_type, res_id)
        if not versions:
            raise NotFound(f"{res_type}/{res_id} is not known")
        return versions

    def search(
        self, query: SearchQuery, *, visibility: Visibility, include_visibility: Visibility | None = None
    ) -> SearchResult:
        """Matches restricted to `visibility`; included resources to `include_visibility` (default:
        the same), so that every resource returned is one the caller may see."""
        if query.res_type in DERIVED_TYPES or any(i.target_type != "Endpoint" for i in query.includes):
            self._publisher.pending()
        types = self._types[query.res_type]
        with self._db.read() as session:
            if not visibility.sees_type(query.res_type):
                raise NotFound(f"resource type {query.res_type} is not visible to this caller")
            stmt = matching(query, types, visibility.alternatives(query.res_type))
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) if query.total else None
            if query.summary_count:
                return SearchResult(query, total, [], [])
            ids = list(session.scalars(ordered(stmt, query, types).limit(query.count).offset(query.offset)))
            matches = self._store.read_many(session, [(query.res_type, i) for i in ids])
            included = self._included(session, query, ids, include_visibility or visibility)
        return SearchResult(query, total, matches, included)

    def _visible(self, session: Session, res_type: str, res_id: str, visibility: Visibility) -> None:
        alts = visibility.alternatives(res_type)
        if alts is None and visibility.sees_type(res_type):
            return
        stmt = select(FhirResourceRow.res_id).where(
            FhirResourceRow.res_type == res_type,
            FhirResourceRow.res_id == res_id,
            restricted(alts or (), self._types[res_type]),
        )
        if session.scalar(stmt) is None:
            raise NotFound(f"{res_type}/{res_id} is not known")

    def _included(
        self, session: Session, query: SearchQuery, ids: list[str], visibility: Visibility
    ) -> list[StoredResource]:
        if not query.includes or not ids:
            return []
        keys: dict[tuple[str, str], None] = {}
        for inc in query.includes:
            stmt = select(SearchReference.target_type, SearchReference.target_id).where(
                SearchReference.res_type == query.res_type,
                SearchReference.res_id.in_(ids),
                SearchReference.param == inc.param,
            )
            if inc.target_type:
                stmt = stmt.where(SearchReference.target_type == inc.target_type)
            for target_type, target_id in session.execute(stmt):
                keys.setdefault((target_type, target_id), None)
        return self._store.read_many(session, self._only_visible(session, list(keys), visibility))

    def _only_visible(
        self, session: Session, keys: list[tuple[str, str]], visibility: Visibility
    ) -> list[tuple[str, str]]:
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in keys:
            by_type.setdefault(res_type, []).append(res_id)
        allowed: set[tuple[str, str]] = set()
        for res_type, res_ids in by_type.items():
            if res_type not in self._types or not visibility.sees_type(res_type):
                continue
            alts = visibility.alternatives(res_type)
            if alts is None:
                allowed.update((res_type, i) for i in res_ids)
                continue
            stmt = select(FhirResourceRow.res_id).where(
                FhirResourceRow.res_type == res_type,
                FhirResourceRow.res_id.in_(res_ids),
                restricted(alts, self._types[res_type]),
            )
            allowed.update((res_type, i) for i in session.scalars(stmt))
        return [k for k in keys if k in allowed]

    def _fresh(self, res_type: str, res_id: str) -> None:
        if res_type == "ImagingStudy":
            self._publisher.imaging_study(res_id)
        elif res_type == "Patient":
            self._publisher.patient(res_id)


def _supported(res_type: str) -> None:
    if res_type not in REGISTRY:
        raise NotFound(f"resource type {res_type} is not supported")
