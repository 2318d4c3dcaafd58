"""The HTTP door of the audit trail: one event per request to /fhir, /dicomweb, /wado and /auth,
allowed or refused, fed to the audit use case (`storage.usecases.audit`).

An ASGI middleware in front of the whole HTTP application records each request when its
response starts (so the status is known, and the event is queued before the peer can see the
answer); the guard and the authorization server add who the request is through
`smart_auth.audit_note`. This is where URL shapes are known: which paths are audited and what
action a path is. Query strings are never recorded (they can carry names); paths hold only
resource types, ids and UIDs.
"""

from __future__ import annotations

import logging
from typing import Any

from smart_auth.audit_note import AUDIT_KEY, Scope
from storage.usecases.audit import Audit, AuditEvent

log = logging.getLogger(__name__)

_SOURCES = ("/fhir", "/dicomweb", "/wado", "/auth")
_UNAUDITED = (
    "/fhir/metadata",
    "/fhir/.well-known/",
    "/auth/jwks",
    "/auth/smart-style.json",
)


def action_of(method: str, path: str) -> tuple[str, str]:
    """(source, action) of a request path, e.g. ("fhir", "search")."""
    parts = [p for p in path.split("/") if p]
    source = parts[0] if parts else ""
    rest = parts[1:]
    if source == "fhir":
        if method == "POST" and rest[-1:] == ["_search"]:
            return source, "search"
        if method == "POST" and len(rest) == 1:
            return source, "create"
        if method == "PUT" and len(rest) == 2:
            return source, "update"
        return source, {1: "search", 2: "read", 3: "history", 4: "vread"}.get(len(rest), "other")
    if source in ("dicomweb", "wado"):
        return source, "store" if method == "POST" else "retrieve"
    return source, (rest[0] if rest else "other")


class AuditMiddleware:
    """ASGI middleware in front of the whole HTTP application."""

    def __init__(self, app: Any, audit: Audit) -> None:
        self.app, self.audit = app, audit

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
        self.audit.record(
            AuditEvent(
                source=source,
                action=holder.get("action") or action,
                outcome="allowed" if code < 400 else ("refused" if code < 500 else "failed"),
                client_id=holder.get("client_id"),
                user=holder.get("user"),
                patient=holder.get("patient"),
                peer=client[0] if client else None,
                method=method,
                path=path,
                status=code,
                detail=holder.get("detail") or None,
            )
        )
        if code in (401, 403):
            log.info(
                "access.refused",
                extra={"status": code, "client_id": holder.get("client_id"), "source": source},
            )
