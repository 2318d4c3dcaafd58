"""Introspection (RFC 7662, SMART "Token Introspection") and revocation (RFC 7009) of the tokens
this server issued, on authlib's endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from smart_auth.server.grants import APP_AUTH_METHODS
from smart_auth.server.registry import Client
from smart_auth.server.tokens import launch_context

if TYPE_CHECKING:
    from smart_auth.server.adapter import SmartServer


class SmartIntrospection(IntrospectionEndpoint):
    """RFC 7662. The caller authenticates as a client; a client registered as a resource server
    (`can_introspect`) may introspect any token, any other client only its own."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    server: SmartServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Looked | None:
        return _look_up(self.server, token_string, token_type_hint)

    def check_permission(self, token: _Looked, client: Client, request: Any) -> bool:
        return client.can_introspect or token.client_id == client.client_id

    def introspect_token(self, token: _Looked) -> dict[str, Any]:
        return dict(token.payload)


class SmartRevocation(RevocationEndpoint):
    """RFC 7009. Revoking either token of a grant revokes the grant: its access and refresh tokens
    stop working at once (SMART: afterwards reads answer 401 and refreshes fail)."""

    CLIENT_AUTH_METHODS = APP_AUTH_METHODS
    server: SmartServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Looked | None:
        return _look_up(self.server, token_string, token_type_hint)

    def revoke_token(self, token: _Looked, request: Any) -> None:
        self.server.tokens.revoke_grant(token.grant_id)


def introspect_with_bearer(server: SmartServer, bearer: str, token: str, hint: str | None) -> dict[str, Any]:
    """SMART Token Introspection: a protected endpoint SHALL accept a suitably scoped bearer token;
    ours is any active token of a client registered as a resource server."""
    info = server.tokens.active(bearer)
    client = server.registry.client(info.client_id) if info is not None else None
    if client is None or not client.can_introspect:
        raise InvalidClientError(status_code=401, description="this bearer token may not introspect")
    looked = _look_up(server, token, hint)
    return dict(looked.payload) if looked is not None and looked.active else {"active": False}


class _Looked:
    """A token found for introspection or revocation, whatever its state (authlib's TokenMixin)."""

    def __init__(
        self, kind: str, client_id: str, grant_id: str, active: bool, payload: dict[str, Any]
    ) -> None:
        self.kind, self.client_id, self.grant_id = kind, client_id, grant_id
        self.active, self.payload = active, payload

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def is_expired(self) -> bool:
        return not self.active

    def is_revoked(self) -> bool:
        return not self.active


def _look_up(server: SmartServer, token: str, hint: str | None) -> _Looked | None:
    order = (
        ("refresh_token", "access_token") if hint == "refresh_token" else ("access_token", "refresh_token")
    )
    now = server.config.now()
    for kind in order:
        if kind == "access_token":
            found = server.tokens.access_info(token)
            if found is None:
                continue
            row, grant = found
            active = not row.revoked and not grant.revoked and row.expires_at > now
            return _Looked(kind, row.client_id, row.grant_id, active, _introspection(server, row, grant))
        found_rt = server.tokens.refresh_info(token)
        if found_rt is None:
            continue
        rt, grant = found_rt
        active = not rt.revoked and not rt.used and not grant.revoked and rt.expires_at > now
        return _Looked(kind, rt.client_id, rt.grant_id, active, _claims(server, rt, "refresh_token"))
    return None


def _claims(server: SmartServer, row: Any, token_type: str) -> dict[str, Any]:
    """RFC 7662 2.2: what an active token of either kind says of itself."""
    return {
        "active": True,
        "scope": row.scope,
        "client_id": row.client_id,
        "token_type": token_type,
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.issued_at.timestamp()),
        "iss": server.config.issuer,
    }


def _introspection(server: SmartServer, row: Any, grant: Any) -> dict[str, Any]:
    """An access token: RFC 7662 2.2 plus SMART "Token Introspection": the launch context of the
    token response, and sub / fhirUser when an id_token could have been issued."""
    payload = _claims(server, row, "Bearer") | {"aud": server.config.fhir_base}
    payload |= launch_context(grant.context or {})
    payload["sub"] = row.user_id or row.client_id
    if row.fhir_user:
        payload["fhirUser"] = f"{server.config.fhir_base}/{row.fhir_user}"
    return payload
