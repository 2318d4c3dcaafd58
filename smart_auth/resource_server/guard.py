"""The one check every protected route depends on (FHIR, DICOMweb, WADO): a bearer token in, an
`Access` out, or 401 (RFC 6750 3).

`Guard` is a FastAPI dependency. A route that does not depend on it is unprotected; a test
walks the application's routes and fails on any such route under /fhir (but the metadata and
discovery documents), /dicomweb and /wado. The token may come from this server (`LocalVerifier`)
or from an external authorization server (`smart_auth.resource_server.external`); either gives an `Access`.

The dependency is a coroutine, so that the common case costs no trip to the threadpool: a token
the verifier checked within its cache period (`TokenVerifier.remembered`, no I/O) is answered on
the event loop; every other check (a database read, a key fetch, an introspection call) runs on
the threadpool, as a synchronous dependency would. Either way the same verifier decides, with
the same cache and the same revocation rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from smart_auth.audit_note import note
from smart_auth.resource_server.access import Access, VisibilityRules
from smart_auth.scopes import ScopeSet
from storage.errors import InsufficientScope, Unauthenticated

MAX_TOKEN = 4096


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Access | None:
        """The access a valid token grants; None when it is unknown, expired, revoked or foreign."""
        ...

    def remembered(self, token: str) -> Access | None:
        """What `verify` would answer, when it can be told without I/O (a check within the
        verifier's cache period found the token valid and it has not expired since); None when
        only `verify` can tell."""
        ...


class ActiveToken(Protocol):
    """What the resource server reads of an active token of our own authorization server."""

    @property
    def client_id(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def fhir_user(self) -> str | None: ...
    @property
    def patient(self) -> str | None: ...
    @property
    def scope(self) -> str: ...


class ActiveTokens(Protocol):
    """Our authorization server's token store (`smart_auth.server.tokens.Tokens`), seen from here."""

    def active(self, token: str) -> ActiveToken | None:
        """The token when it is known, unexpired and unrevoked."""
        ...

    def remembered(self, token: str) -> ActiveToken | None:
        """`active` from what a recent check found, without reading the database; None when only
        `active` can tell."""
        ...


class LocalVerifier:
    """Tokens issued by our own authorization server: one primary-key read."""

    def __init__(
        self, tokens: ActiveTokens, rules: VisibilityRules, parse: Callable[[str | None], ScopeSet]
    ) -> None:
        self._tokens, self._rules, self._parse = tokens, rules, parse

    def verify(self, token: str) -> Access | None:
        return self._access(self._tokens.active(token))

    def remembered(self, token: str) -> Access | None:
        return self._access(self._tokens.remembered(token))

    def _access(self, info: ActiveToken | None) -> Access | None:
        if info is None:
            return None
        scopes = self._parse(info.scope)
        return Access(info.client_id, info.user_id, info.fhir_user, info.patient, scopes, self._rules)


class Guard:
    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def __call__(self, request: Request) -> Access:
        """The dependency: on the event loop when the verifier remembers the token, else the
        verifier's check on the threadpool."""
        value = _bearer(request)
        access = self.verifier.remembered(value)
        if access is None:
            access = await run_in_threadpool(self.verifier.verify, value)
        return self._admitted(request, access)

    def check(self, request: Request) -> Access:
        """The same decision, synchronously (for a route that checks a token only sometimes)."""
        return self._admitted(request, self.verifier.verify(_bearer(request)))

    @staticmethod
    def _admitted(request: Request, access: Access | None) -> Access:
        if access is None:
            raise Unauthenticated(
                "the access token is not valid: unknown, expired or revoked", presented=True
            )
        note(request.scope, client_id=access.client_id, user=access.fhir_user, patient=access.patient)
        return access


def _bearer(request: Request) -> str:
    """The bearer token of the Authorization header; Unauthenticated when there is none."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("this request needs a bearer token")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > MAX_TOKEN:
        raise Unauthenticated("send the token as Authorization: Bearer <token>", presented=True)
    return value


def www_authenticate(exc: Unauthenticated | InsufficientScope, realm: str) -> str:
    """The Bearer challenge of RFC 6750 3: `invalid_token` when a token was sent and refused,
    `insufficient_scope` (with the scope that would do) when it was valid but not enough."""
    parts = [f'Bearer realm="{realm}"']
    if isinstance(exc, InsufficientScope):
        parts.append('error="insufficient_scope"')
        parts.append(f'scope="{exc.needed}"')
    elif exc.presented:
        parts.append('error="invalid_token"')
        parts.append(f'error_description="{str(exc).replace(chr(34), chr(39))}"')
    return ", ".join(parts)
