"""The grant types of the token endpoint, on authlib's grants; what SMART adds or authlib leaves
too loose is overridden here:

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

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt

from smart_auth.scopes import allowed_by, narrowed, without_system
from smart_auth.server.keys import ALG
from smart_auth.server.registry import Client, User
from smart_auth.server.tokens import Grant, RefreshInfo, launch_context

if TYPE_CHECKING:
    from smart_auth.server.adapter import SmartServer

# RFC 7636 4.1 and 4.2: a code_verifier, and so an S256 code_challenge, is 43 to 128 unreserved
# characters.
PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
APP_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


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
        if not PKCE_VALUE.match(verifier):
            raise InvalidRequestError("code_verifier must be 43 to 128 unreserved characters")
        if create_s256_code_challenge(verifier) != self.request.authorization_code.code_challenge:
            raise InvalidGrantError("code_verifier does not match the code_challenge")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        code = self.request.authorization_code
        user = self.authenticate_user(code)
        if user is None:
            raise InvalidGrantError("the user of this code no longer exists")
        body = token_body(
            self.server, code.grant, code.grant.scope, client=self.request.client, user=user, nonce=code.nonce
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
        body = token_body(self.server, old.grant, scope, client=self.request.client, user=user)
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


def token_body(
    server: SmartServer,
    grant: Grant,
    scope: str,
    *,
    client: Client,
    user: User | None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """The response of the code and refresh grants; `system/` scopes are dropped here too, should
    a grant hold one (they are for Backend Services only)."""
    scope = without_system(scope)
    scopes = server.parse_scopes(scope)
    granted = server.parse_scopes(grant.scope)  # a narrowed refresh keeps the grant's refresh rights
    context = grant.context
    refresh_lifetime = None
    if client.check_grant_type("refresh_token") and user is not None:
        if granted.offline:
            refresh_lifetime = server.config.offline_refresh_days * 86400
        elif granted.online:
            refresh_lifetime = server.config.session_seconds
    issued = server.tokens.issue(
        grant,
        scope=scope,
        lifetime=server.config.access_token_seconds,
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
        body["id_token"] = id_token(server, user, client, nonce)
    return body | launch_context(context)


def id_token(server: SmartServer, user: User, client: Client, nonce: str | None) -> str:
    """OpenID Connect Core 2: RS256, iss = our FHIR base, aud = the client, fhirUser absolute."""
    config = server.config
    now = config.now()
    claims: dict[str, Any] = {
        "iss": config.issuer,
        "sub": user.id,
        "aud": client.client_id,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=config.access_token_seconds)).timestamp()),
        "fhirUser": f"{config.fhir_base}/{user.fhir_user}",
    }
    if nonce:
        claims["nonce"] = nonce
    key = server.keys.signing_key()
    return jwt.encode({"alg": ALG, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[ALG])
