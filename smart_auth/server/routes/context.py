"""What the /auth routers work with, handed to them as one FastAPI dependency (`Context`), and
the browser-session lookup they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from smart_auth.config import AuthConfig
from smart_auth.server.adapter import SmartServer
from smart_auth.server.authorize import Authorization
from smart_auth.server.registry import Registry
from smart_auth.server.sessions import LoginSession, Sessions
from smart_auth.server.tokens import Tokens
from storage.usecases.search import Search

SESSION_COOKIE = "facade_session"


@dataclass(frozen=True)
class AuthContext:
    config: AuthConfig
    server: SmartServer
    authorization: Authorization
    sessions: Sessions
    search: Search

    @property
    def registry(self) -> Registry:
        return self.server.registry

    @property
    def tokens(self) -> Tokens:
        return self.server.tokens

    def current(self, request: Request) -> LoginSession | None:
        """The signed-in browser session of the request, if any (one database read)."""
        return self.sessions.current(request.cookies.get(SESSION_COOKIE))


def install(app: FastAPI, context: AuthContext) -> None:
    app.state.auth_context = context


async def _context(request: Request) -> AuthContext:  # async: no thread for an attribute read
    context: AuthContext = request.app.state.auth_context
    return context


Context = Annotated[AuthContext, Depends(_context)]
