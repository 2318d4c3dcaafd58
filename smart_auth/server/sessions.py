"""Short-lived server-side state of the browser flow: logins, pending authorization requests, and
EHR launch contexts.

- A login session is a random cookie value (stored as its digest) with a CSRF token bound to
  it; every form posted to /auth carries that token (synchronizer token pattern).
- A pending request holds an authorization request that passed validation, so that the login
  and consent pages act on what was validated, never on parameters resent by the browser.
- A launch is the context an EHR hands us (patient, encounter, fhirUser, intent, banner,
  style) behind an opaque id; it is used once and expires after `launch_seconds`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update

from smart_auth.server.credentials import digest, new_secret
from storage.auth.models import AssertionJtiRow, AuthLaunchRow, AuthRequestRow, AuthSessionRow
from storage.db import Database


@dataclass(frozen=True)
class LoginSession:
    user_id: str
    csrf: str


@dataclass(frozen=True)
class PendingRequest:
    id: str
    client_id: str
    params: dict[str, Any]


class Sessions:
    def __init__(self, db: Database, *, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now

    # --- logins ---------------------------------------------------------------------------------

    def login(self, user_id: str, lifetime: int) -> tuple[str, LoginSession]:
        """A new session; returns the cookie value (shown once) and the session."""
        cookie, csrf = new_secret(), secrets.token_urlsafe(24)
        now = self._now()
        with self._db.write() as session:
            session.add(
                AuthSessionRow(
                    id_hash=digest(cookie),
                    user_id=user_id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime),
                    revoked=False,
                )
            )
        return cookie, LoginSession(user_id, csrf)

    def current(self, cookie: str | None) -> LoginSession | None:
        if not cookie:
            return None
        with self._db.read() as session:
            row = session.get(AuthSessionRow, digest(cookie))
            if row is None or row.revoked or row.expires_at <= self._now():
                return None
            return LoginSession(row.user_id, row.csrf)

    def logout(self, cookie: str | None) -> None:
        if not cookie:
            return
        with self._db.write() as session:
            session.execute(
                update(AuthSessionRow).where(AuthSessionRow.id_hash == digest(cookie)).values(revoked=True)
            )

    def purge_expired(self) -> int:
        """Delete sessions, requests, launches and seen assertion ids that expired a day ago."""
        cutoff = self._now() - timedelta(days=1)
        removed = 0
        with self._db.write() as session:
            for table in (AuthSessionRow, AuthRequestRow, AuthLaunchRow, AssertionJtiRow):
                result = session.execute(delete(table).where(table.expires_at < cutoff))
                removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    # --- pending authorization requests ---------------------------------------------------------

    def hold(self, client_id: str, params: dict[str, Any], lifetime: int) -> PendingRequest:
        request_id = new_secret()
        now = self._now()
        with self._db.write() as session:
            session.add(
                AuthRequestRow(
                    id=request_id,
                    client_id=client_id,
                    params=params,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime),
                    done=False,
                )
            )
        return PendingRequest(request_id, client_id, params)

    def pending(self, request_id: str | None) -> PendingRequest | None:
        if not request_id or len(request_id) > 64:
            return None
        with self._db.read() as session:
            row = session.get(AuthRequestRow, request_id)
            if row is None or row.done or row.expires_at <= self._now():
                return None
            return PendingRequest(row.id, row.client_id, dict(row.params))

    def finish(self, request_id: str) -> bool:
        """Mark the request answered; False when it was answered already (a double submit)."""
        with self._db.write() as session:
            row = session.get(AuthRequestRow, request_id, with_for_update=True)
            if row is None or row.done:
                return False
            row.done = True
            return True

    # --- EHR launches ---------------------------------------------------------------------------

    def new_launch(self, context: dict[str, Any], *, client_id: str | None, lifetime: int) -> str:
        launch = new_secret()
        now = self._now()
        with self._db.write() as session:
            session.add(
                AuthLaunchRow(
                    id_hash=digest(launch),
                    client_id=client_id,
                    context=context,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime),
                    used=False,
                )
            )
        return launch

    def peek_launch(self, launch: str, client_id: str) -> dict[str, Any] | None:
        """The context of a launch that is still usable by this client (not consumed)."""
        with self._db.read() as session:
            row = session.get(AuthLaunchRow, digest(launch))
            if row is None or row.used or row.expires_at <= self._now():
                return None
            if row.client_id is not None and row.client_id != client_id:
                return None
            return dict(row.context)

    def use_launch(self, launch: str) -> bool:
        with self._db.write() as session:
            row = session.get(AuthLaunchRow, digest(launch), with_for_update=True)
            if row is None or row.used:
                return False
            row.used = True
            return True
