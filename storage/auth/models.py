"""SQLAlchemy models of the SMART authorization server (the audit trail is `storage.audit`).

Secrets are never stored: client secrets and user passwords as scrypt hashes,
tokens, codes, launch ids and browser sessions as SHA-256 digests of the random
value handed out (a database dump gives no usable credential). A *grant* is one
authorization (a user's consent to a client, or a backend client's credentials
grant): codes, access tokens and refresh tokens hang off it, so revoking the grant
(a reused code, a replayed refresh token, a revocation request) revokes them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, Stamp


class OAuthClientRow(Base):
    __tablename__ = "oauth_client"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    auth_method: Mapped[str] = mapped_column(String(32))  # none | client_secret_basic | private_key_jwt
    secret_hash: Mapped[str | None] = mapped_column(String(300))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    launch_url: Mapped[str | None] = mapped_column(String(2000))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(Text)  # what the client may be granted at most
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    can_launch: Mapped[bool] = mapped_column(Boolean, default=False)  # an EHR that creates launches
    can_introspect: Mapped[bool] = mapped_column(Boolean, default=False)  # a resource server
    created_at: Mapped[datetime] = mapped_column(Stamp)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthUserRow(Base):
    __tablename__ = "auth_user"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    fhir_user: Mapped[str] = mapped_column(String(110))  # "Practitioner/<id>" or "Patient/<id>"
    created_at: Mapped[datetime] = mapped_column(Stamp)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthSessionRow(Base):
    """A browser's login at /auth (cookie = the random id; the CSRF token is bound to it)."""

    __tablename__ = "auth_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_user.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime] = mapped_column(Stamp)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthLaunchRow(Base):
    """An EHR launch: the context behind an opaque `launch` id, used once."""

    __tablename__ = "auth_launch"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime] = mapped_column(Stamp)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthRequestRow(Base):
    """A validated authorization request waiting for login and consent."""

    __tablename__ = "auth_request"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime] = mapped_column(Stamp)
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthGrantRow(Base):
    __tablename__ = "auth_grant"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(36))
    scope: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)  # patient, encounter, fhirUser, banner, ...
    created_at: Mapped[datetime] = mapped_column(Stamp)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthCodeRow(Base):
    __tablename__ = "auth_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("auth_grant.id"))
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime] = mapped_column(Stamp)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class AccessTokenRow(Base):
    """Everything a resource request needs, in one row found by primary key."""

    __tablename__ = "access_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("auth_grant.id"))
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(36))
    fhir_user: Mapped[str | None] = mapped_column(String(110))
    patient: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime] = mapped_column(Stamp)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RefreshTokenRow(Base):
    __tablename__ = "refresh_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("auth_grant.id"))
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime] = mapped_column(Stamp)
    used: Mapped[bool] = mapped_column(Boolean, default=False)  # rotated: presenting it again is theft
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AssertionJtiRow(Base):
    """`jti` of client assertions seen, kept until they expire (replay refused)."""

    __tablename__ = "assertion_jti"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(Stamp)


Index("ix_access_token_grant", AccessTokenRow.grant_id)
Index("ix_refresh_token_grant", RefreshTokenRow.grant_id)
Index("ix_auth_code_grant", AuthCodeRow.grant_id)
