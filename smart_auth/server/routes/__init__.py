"""The authorization server's HTTP face, mounted at /auth; one router module per concern.

    GET|POST /authorize      SMART step 3 (authorize-post too)                 `authorize`
    GET|POST /login          sign in (username + password), then on to consent `login`
    GET|POST /consent        approve / deny, untick scopes, pick a patient     `consent`
    GET|POST /logout         end the browser session                           `account`
    GET|POST /manage         the signed-in user's grants, each revocable       `account`
                             (management_endpoint)
    POST     /token          authorization_code, refresh_token, client_credentials  `token`
    POST     /introspect     RFC 7662                                          `token`
    POST     /revoke         RFC 7009                                          `token`
    POST     /launch         an EHR (a client registered with can_launch) creates a launch `launch`
    GET      /jwks           our public signing keys                           `documents`
    GET      /smart-style.json                                                 `documents`

Forms are application/x-www-form-urlencoded; anything else is refused. Pages carry
anti-framing headers; the browser session cookie is HttpOnly, SameSite=Lax, Secure on https.
The routers get what they work with through one dependency (`context.Context`).
"""

from __future__ import annotations

from fastapi import FastAPI

from smart_auth.config import AuthConfig
from smart_auth.server.adapter import SmartServer
from smart_auth.server.authorize import Authorization
from smart_auth.server.routes import account, authorize, consent, documents, launch, login, token
from smart_auth.server.routes.context import AuthContext, install
from smart_auth.server.sessions import Sessions
from storage.usecases.search import Search


def create_auth_app(
    *,
    config: AuthConfig,
    server: SmartServer,
    authorization: Authorization,
    sessions: Sessions,
    search: Search,
) -> FastAPI:
    app = FastAPI(title="SMART authorization server", openapi_url=None, docs_url=None, redoc_url=None)
    install(app, AuthContext(config, server, authorization, sessions, search))
    for module in (authorize, login, consent, account, token, launch, documents):
        app.include_router(module.router)
    return app
