"""What the authorization code adds to a request's audit record: who the request is (the guard,
from the token) and what the authorization server did (client, user, action). It annotates the
ASGI scope; the HTTP composition's audit middleware (`facade.audit_http`) puts the holder there
and records the event once the response has started."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

AUDIT_KEY = "facade.audit"
Scope = MutableMapping[str, Any]


def note(scope: Scope, **facts: str | None) -> None:
    """Facts for the record (client_id, user, action, detail); ignored when nothing audits."""
    holder = scope.get(AUDIT_KEY)
    if holder is not None:
        holder.update(facts)
