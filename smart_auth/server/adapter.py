"""The token side of the SMART authorization server, on authlib's AuthorizationServer.

authlib parses requests, authenticates clients (none, client_secret_basic / _post, and our
private_key_jwt), dispatches grant types and renders RFC 6749 errors; what SMART adds or
authlib leaves too loose is overridden here:

- authorization_code and refresh_token: never a `system/` scope, whatever the grant holds;
- authorization_code: PKCE S256 is required of every client (authlib's CodeChallenge allows
  `plain`, defaults to it, and lets a request without a challenge through); the code is
  consumed before the verifier is checked, so a wrong verifier burns it;
- refresh_token: rotation on every use, replay revokes the grant, `scope` narrowing returns a
  literal subset of what was granted (never rewritten between v1 and v2);
- client_credentials: Backend Services only, `system/` scopes within the client's policy,
  no refresh token, 5-minute tokens;
- the token response carries the SMART launch context (`patient` as a bare id, `encounter`,
  `need_patient_banner`, `smart_style_url`, `intent`) and an RS256 `id_token` for `openid`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from fastapi import Response
from joserfc import jwt

from smart_auth.config import AuthConfig
from smart_auth.scopes import ScopeSet, allowed_by, narrowed, without_system
from smart_auth.server.client_assertion import PrivateKeyJwt
from smart_auth.server.keys import ALG, KeyRing
from smart_auth.server.registry import Client, Registry, User
from smart_auth.server.tokens import Grant, RefreshInfo, Tokens

VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
APP_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
ScopeParser = Callable[[str | None], ScopeSet]


class FormRequest(OAuth2Request):
    """An OAuth2Request from parameters the HTTP layer has already read."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        *,
        args: list[tuple[str, str]] | None = None,
        form: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(method, uri, headers=headers)
        args, form = args or [], form or []
        self._args = _first(args)
        self._form = _first(form)
        self.payload = _Payload([*args, *form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = _first(pairs)
        self._datalist: dict[str, list[str]] = {}
        for key, value in pairs:
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


def _first(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


class SmartServer(AuthorizationServer):
    def __init__(
        self,
        *,
        config: AuthConfig,
        registry: Registry,
        tokens: Tokens,
        keys: KeyRing,
        parse_scopes: ScopeParser,
        assertion: PrivateKeyJwt,
    ) -> None:
        super().__init__()
        self.config, self.registry, self.tokens, self.keys = config, registry, tokens, keys
        self.parse_scopes = parse_scopes
        self.register_client_auth_method(PrivateKeyJwt.METHOD, assertion)
        self.register_grant(SmartCodeGrant)
        self.register_grant(SmartRefreshGrant)
        self.register_grant(BackendGrant)
        self.register_endpoint(SmartIntrospection)
        self.register_endpoint(SmartRevocation)

    # --- authlib's framework hooks --------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        return self.registry.client(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Tokens are stored as they are issued (`Tokens.issue`)."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if not isinstance(request, FormRequest):
            raise TypeError("the HTTP layer builds a FormRequest")
        return request

    def validate_requested_scope(self, scope: str | None) -> None:
        """Scopes are filtered, not refused, per grant (SMART: unsupported scopes are dropped)."""

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        content = json.dumps(body) if isinstance(body, dict) else (body or "")
        return Response(content, status_code=status, headers=dict(headers))

    # --- the SMART token response ---------------------------------------------------------------

    def token_body(
        self, grant: Grant, scope: str, *, client: Client, user: User | None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The response of the code and refresh grants; `system/` scopes are dropped here too, should
        a grant hold one (they are for Backend Services only)."""
        scope = without_system(scope)
        scopes = self.parse_scopes(scope)
        granted = self.parse_scopes(grant.scope)  # a narrowed refresh keeps the grant's refresh rights
        context = grant.context
        refresh_lifetime = None
        if client.check_grant_type("refresh_token") and user is not None:
            if granted.offline:
                refresh_lifetime = self.config.offline_refresh_days * 86400
            elif granted.online:
                refresh_lifetime = self.config.session_seconds
        issued = self.tokens.issue(
            grant,
            scope=scope,
            lifetime=self.config.access_token_seconds,
            fhir_user=context.get("fhirUser"),
            patient=context.get("patient"),
            refresh_lifetime=refresh_lifetime,
        )
        body: dict[str, Any] = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": scope,
        }
        if issued.refresh_token:
            body["refresh_token"] = issued.refresh_token
        if scopes.openid and user is not None:
            body["id_token"] = self.id_token(user, client, nonce)
        for key in ("patient", "encounter", "need_patient_banner", "smart_style_url", "intent"):
            if context.get(key) is not None:
                body[key] = context[key]
        return body

    def introspect_with_bearer(self, bearer: str, token: str, hint: str | None) -> dict[str, Any]:
        """SMART Token Introspection: a protected endpoint SHALL accept a suitably scoped bearer token;
        ours is any active token of a client registered as a resource server."""
        info = self.tokens.active(bearer)
        client = self.registry.client(info.client_id) if info is not None else None
        if client is None or not client.can_introspect:
            raise InvalidClientError(status_code=401, description="this bearer token may not introspect")
        looked = _look_up(self, token, hint)
        return dict(looked.payload) if looked is not None and looked.active else {"active": False}

    def id_token(self, user: User, client: Client, nonce: str | None) -> str:
        """OpenID Connect Core 2: RS256, iss = our FHIR base, aud = the client, fhirUser absolute."""
        now = self.config.now()
        claims: dict[str, Any] = {
            "iss": self.config.issuer,
            "sub": user.id,
            "aud": client.client_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.config.access_token_seconds)).timestamp()),
            "fhirUser": f"{self.config.fhir_base}/{user.fhir_user}",
        }
        if nonce:
            claims["nonce"] = nonce
        key = self.keys.signing_key()
        return jwt.encode({"alg": ALG, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[ALG])


class SmartCodeGrant(AuthorizationCodeGrant):
    """The token half of the code flow (the authorize half is `smart_auth.server.authorize`)."""

    TOKEN_ENDPOINT_AUTH_METHODS = APP_AUTH_METHODS
    server: SmartServer

    def query_authorization_code(self, code: str, client: Client) -> Any:
        return self.server.tokens.take_code(code, client.client_id)

    def delete_authorization_code(self, authorization_code: Any) -> None:
        """Consumed already, when it was taken."""

    def authenticate_user(self, authorization_code: Any) -> User | None:
        return self.server.registry.user(authorization_code.grant.user_id)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        verifier = self.request.form.get("code_verifier")
        if not verifier:
            raise InvalidRequestError("code_verifier is required (PKCE)")
        if not VERIFIER.match(verifier):
            raise InvalidRequestError("code_verifier must be 43 to 128 unreserved characters")
        if create_s256_code_challenge(verifier) != self.request.authorization_code.code_challenge:
            raise InvalidGrantError("code_verifier does not match the code_challenge")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        code = self.request.authorization_code
        user = self.authenticate_user(code)
        if user is None:
            raise InvalidGrantError("the user of this code no longer exists")
        body = self.server.token_body(
            code.grant, code.grant.scope, client=self.request.client, user=user, nonce=code.nonce
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER


class SmartRefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = APP_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: SmartServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshInfo | None:
        return self.server.tokens.refresh(refresh_token)

    def authenticate_user(self, refresh_token: RefreshInfo) -> User | None:
        return self.server.registry.user(refresh_token.grant.user_id)

    def _validate_token_scope(self, token: RefreshInfo) -> None:
        if narrowed(token.scope, self.request.payload.scope) is None:
            raise InvalidScopeError("a refresh may ask for granted scopes only")

    def revoke_old_credential(self, refresh_token: RefreshInfo) -> None:
        self.server.tokens.rotate(refresh_token)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        old: RefreshInfo = self.request.refresh_token
        user = self.authenticate_user(old)
        if user is None:
            raise InvalidGrantError("the user of this grant no longer exists")
        scope = narrowed(old.scope, self.request.payload.scope) or old.scope
        self.revoke_old_credential(old)
        body = self.server.token_body(old.grant, scope, client=self.request.client, user=user)
        return 200, body, self.TOKEN_RESPONSE_HEADER


class BackendGrant(ClientCredentialsGrant):
    """SMART Backend Services: a client_credentials grant with a signed assertion."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]
    server: SmartServer

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: Client = self.request.client
        asked = self.server.parse_scopes(self.request.payload.scope)
        policy = self.server.parse_scopes(client.scope)
        granted = [s.text for s in asked.resources if s.context == "system" and allowed_by(policy, s)]
        if not granted:
            raise InvalidScopeError("ask for system/ scopes this client is registered for")
        scope = " ".join(granted)
        grant = self.server.tokens.new_grant(
            client_id=client.client_id, user_id=None, scope=scope, context={}
        )
        issued = self.server.tokens.issue(
            grant,
            scope=scope,
            lifetime=self.server.config.backend_token_seconds,
            fhir_user=None,
            patient=None,
            refresh_lifetime=None,
        )
        body = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": scope,
        }
        return 200, body, self.TOKEN_RESPONSE_HEADER


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
        payload = {
            "active": True,
            "scope": rt.scope,
            "client_id": rt.client_id,
            "token_type": "refresh_token",
            "exp": int(rt.expires_at.timestamp()),
            "iat": int(rt.issued_at.timestamp()),
            "iss": server.config.issuer,
        }
        return _Looked(kind, rt.client_id, rt.grant_id, active, payload)
    return None


def _introspection(server: SmartServer, row: Any, grant: Any) -> dict[str, Any]:
    """RFC 7662 2.2 plus SMART "Token Introspection": the launch context of the token response,
    and iss / sub / fhirUser when an id_token could have been issued."""
    payload: dict[str, Any] = {
        "active": True,
        "scope": row.scope,
        "client_id": row.client_id,
        "token_type": "Bearer",
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.issued_at.timestamp()),
        "iss": server.config.issuer,
        "aud": server.config.fhir_base,
    }
    context = grant.context or {}
    for key in ("patient", "encounter", "need_patient_banner", "smart_style_url", "intent"):
        if context.get(key) is not None:
            payload[key] = context[key]
    if row.user_id:
        payload["sub"] = row.user_id
    if row.fhir_user:
        payload["fhirUser"] = f"{server.config.fhir_base}/{row.fhir_user}"
    if not row.user_id:
        payload["sub"] = row.client_id
    return payload


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
