"""Search: read, vread, history and search over the FHIR store.

Reads never write. A read or a search shows every instance committed so far: the ImagingStudy
and Patient versions the index implies but the publisher has not stored yet are derived in the
read's own transaction (`storage.usecases.derived`) and take the place of the stored ones, in
the SQL of the search too (`storage.fhir_store.query.overlaid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from sqlalchemy.orm import Session

from mapping.fhir.search_params import PARAM_TYPES, REGISTRY
from storage.clock import Clock, utcnow
from storage.db import Database
from storage.errors import Gone, NotFound
from storage.fhir_store import query as search_sql
from storage.fhir_store.criteria import Criterion, SearchQuery, parse_search
from storage.fhir_store.query import STORED, Tables
from storage.fhir_store.store import FhirStore, StoredResource
from storage.fhir_store.visibility import Visibility
from storage.usecases.derived import DERIVED_TYPES, Current, Derivation

__all__ = ["SUPPORTED_TYPES", "Search", "SearchResult", "StoredResource"]

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
        derivation: Derivation,
        *,
        site_zone: tzinfo,
        default_count: int = 20,
        now: Clock = utcnow,
    ) -> None:
        self._db, self._store, self._derive = db, store, derivation
        self._zone, self._default_count, self._now = site_zone, default_count, now

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
        with self._db.read() as session:
            found, _ = self._current(session, res_type, res_id, visibility)
        if found is None:
            raise NotFound(f"{res_type}/{res_id} is not known")
        if found.body is None:
            raise Gone(f"{res_type}/{res_id} was deleted")
        return found

    def vread(self, res_type: str, res_id: str, version_id: str, *, visibility: Visibility) -> StoredResource:
        _supported(res_type)
        with self._db.read() as session:
            current, derived = self._current(session, res_type, res_id, visibility)
            if not version_id.isdigit():
                raise NotFound("no such version")
            wanted = int(version_id)
            if derived is not None and derived.unpublished and current is not None:
                if current.version_id == wanted:
                    found: StoredResource | None = current
                elif _superseded(derived, wanted):
                    found = None
                else:
                    found = self._store.vread(session, res_type, res_id, wanted)
            else:
                found = self._store.vread(session, res_type, res_id, wanted)
        if found is None:
            raise NotFound("no such version" if current is not None else f"{res_type}/{res_id} is not known")
        if found.body is None:
            raise Gone(f"version {version_id} of {res_type}/{res_id} is a deletion")
        return found

    def history(self, res_type: str, res_id: str, *, visibility: Visibility) -> list[StoredResource]:
        """Retained versions, newest first (provisional versions superseded while a study was
        still arriving are not retained)."""
        _supported(res_type)
        with self._db.read() as session:
            current, derived = self._current(session, res_type, res_id, visibility)
            versions = self._store.history(session, res_type, res_id)
        if derived is not None and derived.unpublished and current is not None:
            versions = [current, *(v for v in versions if not _superseded(derived, v.version_id))]
        if not versions:
            raise NotFound(f"{res_type}/{res_id} is not known")
        return versions

    def search(
        self, query: SearchQuery, *, visibility: Visibility, include_visibility: Visibility | None = None
    ) -> SearchResult:
        """Matches restricted to `visibility`; included resources to `include_visibility` (default:
        the same), so that every resource returned is one the caller may see."""
        types = PARAM_TYPES[query.res_type]
        with self._db.read() as session:
            if not visibility.sees_type(query.res_type):
                raise NotFound(f"resource type {query.res_type} is not visible to this caller")
            pending = self._derive.pending(session, query.res_type)
            if any(i.target_type != "Endpoint" for i in query.includes):
                pending += self._derive.pending(session, "Patient")
            alts = visibility.alternatives(query.res_type)
            used = search_sql.parameters(query, alts)
            for res_type in DERIVED_TYPES:  # the included resources' visibility
                used |= search_sql.parameters(
                    query, (include_visibility or visibility).alternatives(res_type)
                )
            tables = self._overlaid(pending, used)
            stmt = search_sql.matching(query, types, alts, tables)
            total = search_sql.count(session, stmt) if query.total else None
            if query.summary_count:
                return SearchResult(query, total, [], [])
            ids = search_sql.page(session, query, types, stmt, tables)
            matches = self._read_many(session, [(query.res_type, i) for i in ids], pending)
            included: list[StoredResource] = []
            if query.includes and ids:
                keys = search_sql.included(session, query.res_type, ids, query.includes, tables)
                visible = self._only_visible(session, keys, include_visibility or visibility, tables)
                included = self._read_many(session, visible, pending)
        return SearchResult(query, total, matches, included)

    def _current(
        self, session: Session, res_type: str, res_id: str, visibility: Visibility
    ) -> tuple[StoredResource | None, Current | None]:
        """The version a read shows (derived from the index when the store is behind), after the
        visibility check (NotFound when the caller may not see it)."""
        derived = self._derive.of(session, res_type, res_id)
        if not self._visible(session, res_type, res_id, visibility, derived):
            raise NotFound(f"{res_type}/{res_id} is not known")
        if derived is None:
            return self._store.read(session, res_type, res_id), None
        return derived.shown, derived

    def sees(self, session: Session, res_type: str, res_id: str, visibility: Visibility) -> bool:
        """Whether `visibility` shows `res_type/res_id` as a read would, inside the caller's read
        transaction (DICOMweb retrieve applies the FHIR rules to the ImagingStudy of a study)."""
        return res_id in self.visible_among(session, res_type, [res_id], visibility)

    @staticmethod
    def sees_whole(res_type: str, visibility: Visibility) -> bool:
        """Whether `visibility` shows every resource of `res_type` (then nothing is read to
        decide: a caller may skip the session it would be decided in)."""
        return visibility.sees_type(res_type) and visibility.alternatives(res_type) is None

    def visible_among(
        self, session: Session, res_type: str, res_ids: Sequence[str], visibility: Visibility
    ) -> set[str]:
        """Those of `res_ids` that `visibility` shows as a read would, inside the caller's read
        transaction (QIDO-RS filters each page of matching studies so)."""
        _supported(res_type)
        if self.sees_whole(res_type, visibility):
            return set(res_ids)  # the whole type: nothing to derive or match
        derived = [d for res_id in res_ids if (d := self._derive.of(session, res_type, res_id)) is not None]
        return self._visible_ids(session, res_type, res_ids, visibility, derived)

    def _visible(
        self, session: Session, res_type: str, res_id: str, visibility: Visibility, derived: Current | None
    ) -> bool:
        shown = [derived] if derived is not None else []
        return res_id in self._visible_ids(session, res_type, [res_id], visibility, shown)

    def _visible_ids(
        self,
        session: Session,
        res_type: str,
        res_ids: Sequence[str],
        visibility: Visibility,
        derived: Sequence[Current],
    ) -> set[str]:
        """Those of `res_ids` one of the visibility's alternatives allows, the versions the index
        implies (`derived`) in place of the stored ones."""
        alts = visibility.alternatives(res_type)
        if alts is None and visibility.sees_type(res_type):
            return set(res_ids)
        if not res_ids or not alts:
            return set()
        return search_sql.visible_ids(
            session,
            res_type,
            list(res_ids),
            visible=alts,
            param_types=PARAM_TYPES[res_type],
            tables=self._overlaid(derived),
        )

    def _overlaid(self, derived: Sequence[Current], params: set[str] | None = None) -> Tables:
        shown = [(c.shown, c.index_rows or {}) for c in derived if c.unpublished and c.shown is not None]
        return search_sql.overlaid(shown, params, dialect=self._db.dialect) if shown else STORED

    def _read_many(
        self, session: Session, keys: list[tuple[str, str]], derived: Sequence[Current]
    ) -> list[StoredResource]:
        """Current versions of `keys` in the order given, derived ones included, skipping missing
        and deleted ones."""
        shown = {(s.res_type, s.res_id): s for c in derived if c.unpublished and (s := c.shown) is not None}
        stored = self._store.read_many(session, [k for k in keys if k not in shown])
        by_key = {(r.res_type, r.res_id): r for r in stored} | shown
        return [r for k in keys if (r := by_key.get(k)) is not None and r.body is not None]

    def _only_visible(
        self, session: Session, keys: list[tuple[str, str]], visibility: Visibility, tables: Tables
    ) -> list[tuple[str, str]]:
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in keys:
            by_type.setdefault(res_type, []).append(res_id)
        allowed: set[tuple[str, str]] = set()
        for res_type, res_ids in by_type.items():
            if res_type not in PARAM_TYPES or not visibility.sees_type(res_type):
                continue
            alts = visibility.alternatives(res_type)
            if alts is None:
                allowed.update((res_type, i) for i in res_ids)
                continue
            found = search_sql.visible_ids(
                session, res_type, res_ids, visible=alts, param_types=PARAM_TYPES[res_type], tables=tables
            )
            allowed.update((res_type, i) for i in found)
        return [k for k in keys if k in allowed]


def _superseded(derived: Current, version_id: int) -> bool:
    """The stored version is provisional and the index has moved past it: not retained."""
    stored = derived.stored
    return stored is not None and stored.provisional and stored.version_id == version_id


def _supported(res_type: str) -> None:
    if res_type not in REGISTRY:
        raise NotFound(f"resource type {res_type} is not supported")
