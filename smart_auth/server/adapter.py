"""authlib's AuthorizationServer, adapted to this service: the framework hooks, and the
`FormRequest` the HTTP layer builds from parameters it has already read.

authlib parses requests, authenticates clients (none, client_secret_basic / _post, and our
private_key_jwt), dispatches grant types (`smart_auth.server.grants`) and the introspection and
revocation endpoints (`smart_auth.server.token_endpoints`), and renders RFC 6749 errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Payload, OAuth2Request
from fastapi import Response

from smart_auth.config import AuthConfig
from smart_auth.scopes import ScopeSet
from smart_auth.server.client_assertion import PrivateKeyJwt
from smart_auth.server.grants import BackendGrant, SmartCodeGrant, SmartRefreshGrant
from smart_auth.server.keys import KeyRing
from smart_auth.server.registry import Client, Registry
from smart_auth.server.token_endpoints import SmartIntrospection, SmartRevocation
from smart_auth.server.tokens import Tokens

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
