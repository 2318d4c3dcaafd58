"""Writes: the resources clients write over FHIR (DiagnosticReport, Observation), created and
updated in one transaction each (FHIR R4 3.1.0.4 update, 3.1.0.5 create, 3.1.0.8 conditional
create).

- A resource must be valid R4 (400 naming the element, `mapping.fhir.validation`) and its status
  change must follow the lifecycle (422, `mapping.fhir.result_status`). References to resources
  this server does not hold are kept as written: a report may name a Practitioner or an
  Encounter the EHR holds.
- `create` assigns the id (an id in the body is ignored, R4 3.1.0.5); `If-None-Exist` makes it
  conditional: one match returns that resource unchanged, several are a 412. Two conditional
  creates with the same condition are serialised (PostgreSQL: a transaction-level advisory lock;
  SQLite writes one transaction at a time anyway), so they never make two resources.
- `update` needs the id in the body equal to the one in the URL; `If-Match` (a weak ETag) makes it
  version-aware (412 when the resource has moved on). An update of an id not yet known creates it
  (update as create), with the client's id.
- What must happen with a write happens in its transaction: each `hook` is called with the
  version before and the one stored (the ORU outbox queues a final report there, so that a report
  is never final without its message queued).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from mapping.fhir.result_status import transition_problem
from mapping.fhir.search_params import PARAM_TYPES, REGISTRY, WRITABLE
from mapping.fhir.validation import problems
from storage.clock import Clock, utcnow
from storage.db import Database
from storage.errors import Gone, Invalid, NotFound, PreconditionFailed, Unprocessable
from storage.fhir_store import query as search_sql
from storage.fhir_store.criteria import parse_search
from storage.fhir_store.store import FhirStore, StoredResource, without_version_meta
from storage.fhir_store.visibility import Visibility

Json = dict[str, Any]
# (session, resource type, the current version before the write or None, the version stored, now)
WriteHook = Callable[[Session, str, Json | None, StoredResource, datetime], None]


@dataclass(frozen=True)
class Written:
    resource: StoredResource
    created: bool  # a new resource (201), as opposed to a new version or an existing match (200)
    changed: bool = True  # False: a conditional create found it, or the update changed nothing


class Writes:
    def __init__(
        self,
        db: Database,
        store: FhirStore,
        *,
        site_zone: tzinfo,
        hooks: Sequence[WriteHook] = (),
        now: Clock = utcnow,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._db, self._store, self._zone = db, store, site_zone
        self._hooks, self._now, self._new_id = list(hooks), now, new_id

    def add_hook(self, hook: WriteHook) -> None:
        self._hooks.append(hook)

    def create(
        self,
        res_type: str,
        body: Any,
        *,
        if_none_exist: list[tuple[str, str]] | None = None,
        visibility: Visibility,
    ) -> Written:
        _writable(res_type)
        _valid(body, res_type)
        now = self._now()

        def work(session: Session) -> Written:
            if if_none_exist is not None:
                found = self._existing(session, res_type, if_none_exist, visibility)
                if found is not None:
                    return Written(found, created=False, changed=False)
            resource = {**without_version_meta(body), "id": self._new_id()}
            stored = self._store.put(session, resource, now=now, new=True)
            self._after(session, res_type, None, stored, now)
            return Written(stored, created=True)

        return self._db.transact(work)

    def update(self, res_type: str, res_id: str, body: Any, *, if_match: str | None = None) -> Written:
        _writable(res_type)
        _valid(body, res_type)
        if body.get("id") != res_id:
            raise Invalid(f"the resource's id ({body.get('id')!r}) is not the id in the URL ({res_id!r})")
        wanted = _version(if_match) if if_match is not None else None
        now = self._now()

        def work(session: Session) -> Written:
            current = self._store.read(session, res_type, res_id)
            live = current is not None and current.body is not None
            if wanted is not None and (not live or current is None or current.version_id != wanted):
                have = f"version {current.version_id}" if live and current is not None else "no version"
                raise PreconditionFailed(
                    f"If-Match asks for version {wanted}; {res_type}/{res_id} has {have}"
                )
            before = current.body if current is not None else None
            if before is not None:
                problem = transition_problem(res_type, before, body)
                if problem is not None:
                    raise Unprocessable(problem)
            stored = self._store.put(session, without_version_meta(body), now=now)
            changed = current is None or stored.version_id != current.version_id
            if changed:
                self._after(session, res_type, before, stored, now)
            return Written(stored, created=not live, changed=changed)

        return self._db.transact(work)

    def _existing(
        self, session: Session, res_type: str, pairs: list[tuple[str, str]], visibility: Visibility
    ) -> StoredResource | None:
        """The one resource the If-None-Exist search matches, None when none; 412 for several."""
        if not pairs:
            raise Invalid("If-None-Exist holds no search parameters")
        query = parse_search(res_type, pairs, site_zone=self._zone, now=self._now())
        if query.includes or query.sort:
            raise Invalid("If-None-Exist takes search parameters only")
        self._serialise(session, res_type, pairs)
        stmt = search_sql.matching(query, PARAM_TYPES[res_type], visibility.alternatives(res_type))
        ids = list(session.scalars(stmt.limit(2)))
        if len(ids) > 1:
            raise PreconditionFailed(f"If-None-Exist matches more than one {res_type}")
        if not ids:
            return None
        found = self._store.read(session, res_type, ids[0])
        if found is None or found.body is None:
            raise Gone(f"{res_type}/{ids[0]} was deleted")
        return found

    def _serialise(self, session: Session, res_type: str, pairs: list[tuple[str, str]]) -> None:
        """Conditional creates with the same condition, one after the other (PostgreSQL)."""
        if self._db.dialect != "postgresql":
            return
        condition = res_type + "?" + "&".join(f"{k}={v}" for k, v in sorted(pairs))
        key = int.from_bytes(hashlib.sha256(condition.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def _after(
        self, session: Session, res_type: str, before: Json | None, stored: StoredResource, now: datetime
    ) -> None:
        for hook in self._hooks:
            hook(session, res_type, before, stored, now)


def _writable(res_type: str) -> None:
    if res_type not in REGISTRY:
        raise NotFound(f"resource type {res_type} is not supported")
    if res_type not in WRITABLE:
        raise _ReadOnly(res_type)


class _ReadOnly(Unprocessable):
    def __init__(self, res_type: str) -> None:
        super().__init__(
            f"{res_type} is derived by this server (from DICOM, HL7 or sign-in) and cannot be written "
            f"over FHIR; writable types: {', '.join(WRITABLE)}"
        )


def _valid(body: Any, res_type: str) -> None:
    found = problems(body, res_type)
    if found:
        raise Invalid("; ".join(found))


def _version(etag: str) -> int:
    """The version an If-Match ETag names: W/"3" (or "3")."""
    tag = etag.strip()
    tag = tag[2:] if tag.startswith("W/") else tag
    tag = tag.strip('"')
    if not tag.isdigit():
        raise Invalid(f'If-Match {etag!r} is not a version ETag such as W/"3"')
    return int(tag)
