"""Registered clients and users (`facade client add`, `facade user add`).

Client kinds (SMART App Launch "Client Authentication"):
- `public`: a browser or native app; no secret, PKCE only; auth method `none`;
- `confidential`: a server-side app with a secret (client_secret_basic, or _post);
- `asymmetric`: a server-side app that signs assertions (private_key_jwt, RS384 / ES384)
  with keys given by value (JWKS) or by URL (jwks_uri);
- `backend`: Backend Services, client_credentials with private_key_jwt and `system/` scopes.

A client's `scope` is the most it may be granted; what a user approves is narrower. `system/`
scopes are registered for backend clients only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import select

from mapping.fhir.practitioner import practitioner_from_user
from smart_auth.config import is_loopback
from smart_auth.scopes import is_system
from smart_auth.server.credentials import check_password, hash_password, new_secret
from storage.auth.models import AuthUserRow, OAuthClientRow
from storage.db import Database
from storage.dicom_index import reader as index_reader
from storage.errors import Conflict, Invalid, NotFound
from storage.fhir_store.store import FhirStore

Kind = Literal["public", "confidential", "asymmetric", "backend"]
APP_SCOPE = (
    "launch launch/patient launch/encounter openid fhirUser profile offline_access online_access "
    "patient/*.rs user/*.rs"
)
BACKEND_SCOPE = "system/*.rs"
_METHOD: dict[str, str] = {
    "public": "none",
    "confidential": "client_secret_basic",
    "asymmetric": "private_key_jwt",
    "backend": "private_key_jwt",
}
_GRANTS: dict[str, list[str]] = {
    "public": ["authorization_code", "refresh_token"],
    "confidential": ["authorization_code", "refresh_token"],
    "asymmetric": ["authorization_code", "refresh_token"],
    "backend": ["client_credentials"],
}


@dataclass(frozen=True)
class Client:
    """A registered client, as authlib's ClientMixin wants it."""

    client_id: str
    name: str
    auth_method: str
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    launch_url: str | None
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    scope: str
    grant_types: tuple[str, ...]
    can_launch: bool
    can_introspect: bool

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # SMART: redirect_uri is always sent and matched exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string match (RFC 9700 2.1): no prefix, case or trailing-slash leniency."""
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return check_password(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.auth_method == "client_secret_basic":
            return method in ("client_secret_basic", "client_secret_post")
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def origins(self) -> set[str]:
        return {_origin(u) for u in self.redirect_uris}


@dataclass(frozen=True)
class User:
    id: str
    username: str
    fhir_user: str  # "Practitioner/<id>" | "Patient/<id>"

    @property
    def patient(self) -> str | None:
        """The Patient id of a patient user (their own compartment), else None."""
        kind, _, rid = self.fhir_user.partition("/")
        return rid if kind == "Patient" else None


@dataclass(frozen=True)
class NewClient:
    client: Client
    secret: str | None  # shown once


class Registry:
    def __init__(self, db: Database, store: FhirStore, *, now: Callable[[], datetime]) -> None:
        self._db, self._store, self._now = db, store, now

    # --- clients --------------------------------------------------------------------------------

    def add_client(
        self,
        *,
        name: str,
        kind: Kind,
        redirect_uris: list[str] | None = None,
        launch_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        scope: str | None = None,
        client_id: str | None = None,
        can_launch: bool = False,
        can_introspect: bool = False,
    ) -> NewClient:
        redirect_uris = list(dict.fromkeys(redirect_uris or []))
        if kind != "backend" and not redirect_uris:
            raise Invalid("an app client needs at least one redirect URI")
        for uri in [*redirect_uris, *([launch_url] if launch_url else [])]:
            parts = urlsplit(uri)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
                raise Invalid("redirect and launch URIs are absolute http(s) URLs without a fragment")
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise Invalid("redirect and launch URIs use https, or http on a loopback address (RFC 8252)")
        if kind != "backend" and scope and any(is_system(t) for t in scope.split()):
            raise Invalid("system/ scopes are for backend clients only (client_credentials)")
        if kind in ("asymmetric", "backend") and not (jwks or jwks_uri):
            raise Invalid("an asymmetric client needs its public keys: a JWKS or a JWKS URL")
        if jwks is not None:
            _check_jwks(jwks)
        secret = new_secret() if kind == "confidential" else None
        client_id = client_id or str(uuid.uuid4())
        row = OAuthClientRow(
            client_id=client_id,
            name=name,
            auth_method=_METHOD[kind],
            secret_hash=hash_password(secret) if secret else None,
            redirect_uris=redirect_uris,
            launch_url=launch_url,
            jwks=jwks,
            jwks_uri=jwks_uri,
            scope=scope or (BACKEND_SCOPE if kind == "backend" else APP_SCOPE),
            grant_types=_GRANTS[kind],
            can_launch=can_launch,
            can_introspect=can_introspect,
            created_at=self._now(),
            disabled=False,
        )
        with self._db.write() as session:
            if session.get(OAuthClientRow, client_id) is not None:
                raise Conflict("a client with this id is registered already")
            session.add(row)
        return NewClient(_client(row), secret)

    def client(self, client_id: str | None) -> Client | None:
        if not client_id or len(client_id) > 64:
            return None
        with self._db.read() as session:
            row = session.get(OAuthClientRow, client_id)
            return _client(row) if row is not None and not row.disabled else None

    def clients(self) -> list[Client]:
        with self._db.read() as session:
            rows = session.scalars(select(OAuthClientRow).where(OAuthClientRow.disabled.is_(False)))
            return [_client(r) for r in rows]

    def registered_origins(self) -> set[str]:
        """Origins of every redirect URI: the browsers allowed to call the token endpoint and the
        FHIR API cross-origin (SMART App Launch "CORS")."""
        return {o for c in self.clients() for o in c.origins()}

    # --- users ----------------------------------------------------------------------------------

    def add_user(
        self,
        *,
        username: str,
        password: str,
        practitioner_name: str | None = None,
        patient_id: str | None = None,
    ) -> User:
        """A practitioner (a `Practitioner` resource is created for their fhirUser) or a patient
        (linked to an existing `Patient`)."""
        if (practitioner_name is None) == (patient_id is None):
            raise Invalid("a user is either a practitioner (with a name) or a patient (with a Patient id)")
        if not username.strip() or len(username) > 150:
            raise Invalid("a username has 1 to 150 characters")
        if len(password) < 12:
            raise Invalid("a password has at least 12 characters")
        now = self._now()
        user_id = str(uuid.uuid4())
        with self._db.write() as session:
            if session.scalar(select(AuthUserRow.id).where(AuthUserRow.username == username)):
                raise Conflict("this username is taken")
            if patient_id is not None:
                # every Patient is derived from the index, published yet or not
                if index_reader.patient(session, patient_id) is None:
                    raise NotFound(f"Patient/{patient_id} is not known")
                fhir_user = f"Patient/{patient_id}"
            else:
                fhir_user = f"Practitioner/{user_id}"
                self._store.put(session, practitioner_from_user(user_id, practitioner_name or ""), now=now)
            session.add(
                AuthUserRow(
                    id=user_id,
                    username=username,
                    password_hash=hash_password(password),
                    fhir_user=fhir_user,
                    created_at=now,
                    disabled=False,
                )
            )
        return User(user_id, username, fhir_user)

    def user(self, user_id: str | None) -> User | None:
        if not user_id:
            return None
        with self._db.read() as session:
            row = session.get(AuthUserRow, user_id)
            return User(row.id, row.username, row.fhir_user) if row and not row.disabled else None

    def login(self, username: str, password: str) -> User | None:
        """The user when the password matches; a hash is computed either way (no timing oracle)."""
        with self._db.read() as session:
            row = session.scalar(select(AuthUserRow).where(AuthUserRow.username == username))
        stored = row.password_hash if row is not None and not row.disabled else _DUMMY
        ok = check_password(password, stored)
        if row is None or row.disabled or not ok:
            return None
        return User(row.id, row.username, row.fhir_user)


_DUMMY = hash_password(new_secret())


def _client(row: OAuthClientRow) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        auth_method=row.auth_method,
        secret_hash=row.secret_hash,
        redirect_uris=tuple(row.redirect_uris),
        launch_url=row.launch_url,
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        scope=row.scope,
        grant_types=tuple(row.grant_types),
        can_launch=row.can_launch,
        can_introspect=row.can_introspect,
    )


def _check_jwks(jwks: dict[str, Any]) -> None:
    """SMART CA: every key has kty and kid; RSA keys n and e; EC keys crv, x and y; no private part."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise Invalid("a JWKS is an object with a non-empty `keys` list")
    for key in keys:
        if not isinstance(key, dict) or not key.get("kid") or key.get("kty") not in ("RSA", "EC"):
            raise Invalid("every key of the JWKS needs a kid and kty RSA or EC")
        needed = ("n", "e") if key["kty"] == "RSA" else ("crv", "x", "y")
        if any(not key.get(k) for k in needed):
            raise Invalid(f"a {key['kty']} key needs {', '.join(needed)}")
        if "d" in key:
            raise Invalid("register public keys only: this JWKS holds a private key")


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"
