"""Grants, authorization codes, access and refresh tokens (RFC 6749, RFC 9700).

- Codes live `code_seconds` (60 s), are bound to client, redirect URI, PKCE challenge and the
  grant; a second use refuses and revokes everything issued from the grant (RFC 6749 4.1.2).
- Access tokens are opaque 256-bit values; the row found by their digest says everything a
  resource request needs (client, user, patient, scope, expiry, revocation).
- Refresh tokens rotate: each use returns a new one and marks the old as used; presenting a
  used one again is treated as theft and revokes the grant (RFC 9700 4.14.2).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from smart_auth.server.credentials import digest, new_secret
from storage.auth.models import AccessTokenRow, AuthCodeRow, AuthGrantRow, RefreshTokenRow
from storage.db import Database

CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Grant:
    id: str
    client_id: str
    user_id: str | None
    scope: str
    context: dict[str, Any]  # patient, encounter, fhirUser, need_patient_banner, smart_style_url, intent


# What of a grant's context the app is told, in the token response and by introspection (SMART
# App Launch "launch context"; fhirUser is told in the id_token and as an absolute URL instead).
TOLD_CONTEXT = ("patient", "encounter", "need_patient_banner", "smart_style_url", "intent")


def launch_context(context: Mapping[str, Any]) -> dict[str, Any]:
    return {key: context[key] for key in TOLD_CONTEXT if context.get(key) is not None}


@dataclass(frozen=True)
class Code:
    grant: Grant
    redirect_uri: str
    code_challenge: str
    nonce: str | None

    # authlib's AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope


@dataclass(frozen=True)
class TokenInfo:
    """An active access token, as the resource server sees it."""

    grant_id: str
    client_id: str
    user_id: str | None
    fhir_user: str | None
    patient: str | None
    scope: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class RefreshInfo:
    """A refresh token that may be used (authlib's TokenMixin)."""

    grant: Grant
    scope: str
    token_hash: str
    expires_at: datetime

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.grant.client_id)

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_in: int
    refresh_token: str | None


class Tokens:
    def __init__(self, db: Database, *, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now
        self._cache: dict[str, tuple[float, TokenInfo]] = {}

    # --- grants and codes -----------------------------------------------------------------------

    def new_grant(self, *, client_id: str, user_id: str | None, scope: str, context: dict[str, Any]) -> Grant:
        grant = Grant(str(uuid.uuid4()), client_id, user_id, scope, context)
        with self._db.write() as session:
            session.add(
                AuthGrantRow(
                    id=grant.id,
                    client_id=client_id,
                    user_id=user_id,
                    scope=scope,
                    context=context,
                    created_at=self._now(),
                    revoked=False,
                )
            )
        return grant

    def new_code(
        self, grant: Grant, *, redirect_uri: str, code_challenge: str, nonce: str | None, lifetime: int
    ) -> str:
        code = new_secret()
        now = self._now()
        with self._db.write() as session:
            session.add(
                AuthCodeRow(
                    code_hash=digest(code),
                    grant_id=grant.id,
                    client_id=grant.client_id,
                    redirect_uri=redirect_uri,
                    code_challenge=code_challenge,
                    nonce=nonce,
                    created_at=now,
                    expires_at=now + timedelta(seconds=lifetime),
                    used=False,
                )
            )
        return code

    def take_code(self, code: str, client_id: str) -> Code | None:
        """The code, marked used in the same transaction; None when unknown, expired, another
        client's or used before (then the grant and all its tokens are revoked)."""
        with self._db.write() as session:
            row = session.get(AuthCodeRow, digest(code), with_for_update=True)
            if row is None or row.client_id != client_id:
                return None
            if row.used:
                self._revoke(session, row.grant_id)
                return None
            row.used = True
            grant_row = session.get(AuthGrantRow, row.grant_id)
            if grant_row is None or grant_row.revoked or row.expires_at <= self._now():
                return None
            return Code(_grant(grant_row), row.redirect_uri, row.code_challenge, row.nonce)

    # --- tokens ---------------------------------------------------------------------------------

    def issue(
        self,
        grant: Grant,
        *,
        scope: str,
        lifetime: int,
        fhir_user: str | None,
        patient: str | None,
        refresh_lifetime: int | None,
    ) -> Issued:
        """An access token (and a refresh token when `refresh_lifetime` is given)."""
        access = new_secret()
        refresh = new_secret() if refresh_lifetime else None
        now = self._now()
        with self._db.write() as session:
            session.add(
                AccessTokenRow(
                    token_hash=digest(access),
                    grant_id=grant.id,
                    client_id=grant.client_id,
                    user_id=grant.user_id,
                    fhir_user=fhir_user,
                    patient=patient,
                    scope=scope,
                    issued_at=now,
                    expires_at=now + timedelta(seconds=lifetime),
                    revoked=False,
                )
            )
            if refresh is not None and refresh_lifetime:
                session.add(
                    RefreshTokenRow(
                        token_hash=digest(refresh),
                        grant_id=grant.id,
                        client_id=grant.client_id,
                        scope=grant.scope,
                        issued_at=now,
                        expires_at=now + timedelta(seconds=refresh_lifetime),
                        used=False,
                        revoked=False,
                    )
                )
        return Issued(access, lifetime, refresh)

    def active(self, token: str) -> TokenInfo | None:
        """The access token when it is known, unexpired and not revoked, nor its grant.

        This runs on every resource request: one indexed join on a bare connection, remembered for
        `CACHE_SECONDS`. A revocation through this process forgets everything at once; one made by
        another process of the same deployment is seen within that time."""
        key = digest(token)
        hit = self._cache.get(key)
        now = self._now()
        if hit is not None and hit[0] > time.monotonic():
            return hit[1] if hit[1].expires_at > now else None
        info = self._lookup(key)
        if info is None or info.expires_at <= now:
            return None
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + CACHE_SECONDS, info)
        return info

    def remembered(self, token: str) -> TokenInfo | None:
        """`active` without reading the database: the token when a check within `CACHE_SECONDS`
        found it active and it has not expired since; None when only `active` can tell (unknown
        here, expired, revoked, or not checked lately). Cheap enough for the event loop."""
        hit = self._cache.get(digest(token))
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1] if hit[1].expires_at > self._now() else None

    def _lookup(self, key: str) -> TokenInfo | None:
        t, g = AccessTokenRow, AuthGrantRow
        stmt = (
            select(
                t.grant_id, t.client_id, t.user_id, t.fhir_user, t.patient, t.scope, t.issued_at, t.expires_at
            )
            .join(g, g.id == t.grant_id)
            .where(t.token_hash == key, t.revoked.is_(False), g.revoked.is_(False))
        )
        with self._db.read_connection() as conn:
            row = conn.execute(stmt).first()
        return TokenInfo(*row) if row is not None else None

    def refresh(self, token: str) -> RefreshInfo | None:
        """A usable refresh token; a used (rotated) one revokes its grant (replay = theft)."""
        with self._db.write() as session:
            row = session.get(RefreshTokenRow, digest(token), with_for_update=True)
            if row is None or row.revoked:
                return None
            if row.used:
                self._revoke(session, row.grant_id)
                return None
            grant = session.get(AuthGrantRow, row.grant_id)
            if grant is None or grant.revoked or row.expires_at <= self._now():
                return None
            return RefreshInfo(_grant(grant), row.scope, row.token_hash, row.expires_at)

    def rotate(self, old: RefreshInfo) -> None:
        """Mark a refresh token used once its successor is issued."""
        with self._db.write() as session:
            session.execute(
                update(RefreshTokenRow).where(RefreshTokenRow.token_hash == old.token_hash).values(used=True)
            )

    def refresh_info(self, token: str) -> tuple[RefreshTokenRow, AuthGrantRow] | None:
        """Refresh token and grant rows, whatever their state (introspection, revocation)."""
        with self._db.read() as session:
            row = session.get(RefreshTokenRow, digest(token))
            if row is None:
                return None
            grant = session.get(AuthGrantRow, row.grant_id)
            return (row, grant) if grant is not None else None

    def access_info(self, token: str) -> tuple[AccessTokenRow, AuthGrantRow] | None:
        with self._db.read() as session:
            row = session.get(AccessTokenRow, digest(token))
            if row is None:
                return None
            grant = session.get(AuthGrantRow, row.grant_id)
            return (row, grant) if grant is not None else None

    def revoke_grant(self, grant_id: str) -> None:
        with self._db.write() as session:
            self._revoke(session, grant_id)

    def purge_expired(self) -> int:
        """Delete codes and tokens that expired more than a day ago (their grants stay, for the
        record); returns the number of rows removed."""
        cutoff = self._now() - timedelta(days=1)
        removed = 0
        with self._db.write() as session:
            for table in (AuthCodeRow, AccessTokenRow, RefreshTokenRow):
                result = session.execute(delete(table).where(table.expires_at < cutoff))
                removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    def _revoke(self, session: Any, grant_id: str) -> None:
        """Revoke a grant and every token issued from it, and forget remembered token checks."""
        session.execute(update(AuthGrantRow).where(AuthGrantRow.id == grant_id).values(revoked=True))
        session.execute(
            update(AccessTokenRow).where(AccessTokenRow.grant_id == grant_id).values(revoked=True)
        )
        session.execute(
            update(RefreshTokenRow).where(RefreshTokenRow.grant_id == grant_id).values(revoked=True)
        )
        self._cache.clear()

    def grants_of(self, user_id: str) -> list[tuple[Grant, datetime]]:
        """A user's grants that are not revoked, newest first, with when they were made."""
        with self._db.read() as session:
            rows = session.scalars(
                select(AuthGrantRow)
                .where(AuthGrantRow.user_id == user_id, AuthGrantRow.revoked.is_(False))
                .order_by(AuthGrantRow.created_at.desc())
            )
            return [(_grant(r), r.created_at) for r in rows]

    def grant(self, grant_id: str) -> Grant | None:
        with self._db.read() as session:
            row = session.get(AuthGrantRow, grant_id)
            return _grant(row) if row is not None and not row.revoked else None


def _grant(row: AuthGrantRow) -> Grant:
    return Grant(row.id, row.client_id, row.user_id, row.scope, dict(row.context or {}))
