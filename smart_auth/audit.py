"""The access audit trail: one row per request to /fhir, /dicomweb, /wado and /auth, allowed or
refused, with client, user, patient, path, status and outcome.

An ASGI middleware records every request after its response has started (so the status is
known); the guard adds who the token belongs to. Rows are written by a background thread in
batches (one transaction per half second at most), so that recording costs a request a queue
put, not a database commit; `flush()` drains the queue, `close()` does at shutdown. A crash
loses at most the last batch. Query strings are never recorded (they can carry names); paths
hold only resource types, ids and UIDs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from storage.auth.models import AuditEventRow
from storage.db import Database

if TYPE_CHECKING:
    from smart_auth.access import Access

log = logging.getLogger(__name__)

AUDIT_KEY = "facade.audit"
_SOURCES = ("/fhir", "/dicomweb", "/wado", "/auth")
_UNAUDITED = (
    "/fhir/metadata",
    "/fhir/.well-known/",
    "/auth/jwks",
    "/auth/smart-style.json",
)
Scope = MutableMapping[str, Any]


def note_access(scope: Scope, access: Access) -> None:
    """Called by the guard: who this request is, for the record the middleware writes."""
    holder = scope.get(AUDIT_KEY)
    if holder is not None:
        holder.update(client_id=access.client_id, user=access.fhir_user, patient=access.patient)


def note(scope: Scope, **facts: str | None) -> None:
    holder = scope.get(AUDIT_KEY)
    if holder is not None:
        holder.update(facts)


class AuditTrail:
    def __init__(self, db: Database, *, now: Callable[[], datetime], interval: float = 0.5) -> None:
        self._db, self._now, self._interval = db, now, interval
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=100_000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def record(self, **row: Any) -> None:
        row.setdefault("recorded", self._now())
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            log.error("audit.dropped", extra={"reason": "queue full"})

    def flush(self) -> int:
        """Write everything queued so far; returns the number of rows written."""
        with self._lock:
            rows: list[dict[str, Any]] = []
            while True:
                try:
                    rows.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if rows:
                try:
                    with self._db.write_connection() as conn:
                        conn.execute(insert(AuditEventRow), rows)
                except Exception:
                    log.exception("audit.write_failed", extra={"count": len(rows)})
                    for row in rows:
                        self._queue.put_nowait(row)
                    return 0
            return len(rows)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()


def action_of(method: str, path: str) -> tuple[str, str]:
    """(source, action) of a request path, e.g. ("fhir", "search")."""
    parts = [p for p in path.split("/") if p]
    source = parts[0] if parts else ""
    rest = parts[1:]
    if source == "fhir":
        if method == "POST" and rest[-1:] == ["_search"]:
            return source, "search"
        return source, {1: "search", 2: "read", 3: "history", 4: "vread"}.get(len(rest), "other")
    if source in ("dicomweb", "wado"):
        return source, "store" if method == "POST" else "retrieve"
    return source, (rest[0] if rest else "other")


class AuditMiddleware:
    """ASGI middleware in front of the whole HTTP application."""

    def __init__(self, app: Any, trail: AuditTrail) -> None:
        self.app, self.trail = app, trail

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") == "OPTIONS"
            or not path.startswith(_SOURCES)
            or path.startswith(_UNAUDITED)
        ):
            await self.app(scope, receive, send)
            return
        holder: dict[str, Any] = {}
        scope[AUDIT_KEY] = holder
        recorded = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True  # queued before the peer can see the answer
                self._record(scope, path, holder, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not recorded:  # the application failed before it answered
                self._record(scope, path, holder, 500)

    def _record(self, scope: Scope, path: str, holder: dict[str, Any], code: int) -> None:
        method = scope.get("method", "")
        source, action = action_of(method, path)
        client = scope.get("client")
        self.trail.record(
            source=source,
            action=holder.get("action") or action,
            method=method[:8],
            path=path[:500],
            status=code,
            outcome="allowed" if code < 400 else ("refused" if code < 500 else "failed"),
            client_id=holder.get("client_id"),
            user=holder.get("user"),
            patient=holder.get("patient"),
            peer=client[0][:64] if client else None,
            detail=holder.get("detail") or None,
        )
        if code in (401, 403):
            log.info(
                "access.refused",
                extra={"status": code, "client_id": holder.get("client_id"), "source": source},
            )
