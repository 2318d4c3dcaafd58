"""CORS for browser apps (SMART App Launch "CORS"; Inferno cors_* tests).

- Discovery (`/fhir/metadata`, `/fhir/.well-known/*`, `/auth/jwks`, `/auth/smart-style.json`):
  any origin (`*`), no credentials.
- The token, introspection and revocation endpoints and the APIs (`/fhir`, `/dicomweb`,
  `/wado`): the origins of registered redirect URIs and those the composition adds
  (`FACADE_CORS_ORIGINS`, a viewer such as OHIF on another origin); the Origin is echoed with
  `Vary: Origin`. Authorization is by bearer token, never by cookie, so no credentials mode.
- A preflight (OPTIONS with Access-Control-Request-Method) is answered here, before any route
  or token check: it carries no token and changes nothing.
Pages (/auth/authorize, login, consent) are navigations and get no CORS headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_PUBLIC = ("/fhir/metadata", "/fhir/.well-known/", "/auth/jwks", "/auth/smart-style.json")
_API = ("/fhir", "/dicomweb", "/wado", "/auth/token", "/auth/introspect", "/auth/revoke")
_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
_HEADERS = "Authorization, Content-Type, Accept, Prefer, If-None-Match, If-Match"
_EXPOSE = "ETag, Location, Last-Modified, Content-Location, WWW-Authenticate, Warning"


class CorsMiddleware:
    def __init__(self, app: Any, origins: Callable[[], set[str]], *, ttl: float = 30.0) -> None:
        self.app, self._origins, self._ttl = app, origins, ttl
        self._cached: set[str] = set()
        self._at = 0.0

    def allowed(self, origin: str) -> bool:
        if time.monotonic() - self._at > self._ttl:
            self._cached, self._at = self._origins(), time.monotonic()
        return origin in self._cached

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers", []))  # ASGI header names are lower-case bytes
        origin = raw[b"origin"].decode("latin-1") if b"origin" in raw else None
        if origin is None:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        public = path.startswith(_PUBLIC)
        granted = "*" if public else (origin if path.startswith(_API) and self.allowed(origin) else None)
        if scope.get("method") == "OPTIONS" and b"access-control-request-method" in raw:
            out = [(b"vary", b"Origin")]
            if granted is not None:
                out += [
                    (b"access-control-allow-origin", granted.encode("latin-1")),
                    (b"access-control-allow-methods", _METHODS.encode()),
                    (b"access-control-allow-headers", _HEADERS.encode()),
                    (b"access-control-max-age", b"600"),
                ]
            await send({"type": "http.response.start", "status": 204 if granted else 403, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
        if granted is None:
            await self.app(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", granted.encode("latin-1")),
                    (b"access-control-expose-headers", _EXPOSE.encode()),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, sending)
