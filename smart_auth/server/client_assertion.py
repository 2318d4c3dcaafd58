"""`private_key_jwt` client authentication (SMART "Client Authentication: Asymmetric", RFC 7523,
RFC 8725), registered into authlib's client-authentication registry.

authlib's own JWTBearerClientAssertion decodes without an algorithm list (joserfc then refuses
RS384 / ES384 as "not recommended") and resolves the key before it has seen the header, so it
cannot apply the `jku` rule; this one checks, in order:

1. `client_assertion_type` is jwt-bearer and an assertion is present;
2. header: `alg` in {RS384, ES384} (no `none`, no HS*, so no HS/RS confusion), a `kid`, `typ`
   JWT when present; an embedded `jwk` or `x5u` is ignored, a `jku` must be the registered
   JWKS URL (an unregistered one is never fetched);
3. `iss` = `sub` = a registered private_key_jwt client;
4. exactly one registered key with that `kid` whose type fits the algorithm; the signature;
5. `aud` is our token URL, `exp` in the future and at most 5 minutes ahead, a `jti` never seen
   before from this client (kept until the assertion expires).
Any failure is `invalid_client`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidClientError
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError

from smart_auth.jwks_fetch import JwksFetcher, JwksUnavailable
from smart_auth.server.registry import Client
from storage.auth.models import AssertionJtiRow
from storage.db import Database

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
_KTY = {"RS384": "RSA", "ES384": "EC"}


class PrivateKeyJwt:
    METHOD = "private_key_jwt"

    def __init__(
        self,
        db: Database,
        fetcher: JwksFetcher,
        *,
        token_url: str,
        max_lifetime: int,
        skew: int,
        now: Callable[[], datetime],
    ) -> None:
        self._db, self._fetcher = db, fetcher
        self._token_url, self._max, self._skew, self._now = token_url, max_lifetime, skew, now

    def __call__(self, query_client: Callable[[str], Client | None], request: Any) -> Client | None:
        form = request.form
        kind, assertion = form.get("client_assertion_type"), form.get("client_assertion")
        if not kind and not assertion:
            return None
        if kind != ASSERTION_TYPE or not assertion:
            raise InvalidClientError(
                description="client_assertion_type must be jwt-bearer, with an assertion"
            )
        try:
            compact = jws.extract_compact(assertion.encode())
            header, claims = compact.headers(), json.loads(compact.payload)
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="the client assertion is not a JWT") from exc
        if not isinstance(claims, dict):
            raise InvalidClientError(description="the client assertion is not a JWT")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise InvalidClientError(description="the assertion must be signed with RS384 or ES384")
        if not isinstance(kid, str) or not kid:
            raise InvalidClientError(description="the assertion header needs a kid")
        if header.get("typ") not in (None, "JWT"):
            raise InvalidClientError(description="the assertion typ must be JWT")
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(sub, str) or iss != sub:
            raise InvalidClientError(description="iss and sub must both be the client_id")
        client = query_client(sub)
        if client is None or client.auth_method != self.METHOD:
            raise InvalidClientError(description="no client registered for private_key_jwt with this id")
        key = self._key(client, header, alg, kid)
        try:
            token = jwt.decode(assertion, key, algorithms=[alg])
        except JoseError as exc:
            raise InvalidClientError(description="the assertion signature does not verify") from exc
        self._check_claims(client, token.claims)
        request.client = client
        return client

    def _key(self, client: Client, header: dict[str, Any], alg: str, kid: str) -> KeySet:
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_uri:
            raise InvalidClientError(description="jku is not the JWKS URL registered for this client")
        if client.jwks is not None:
            jwks = client.jwks
        elif client.jwks_uri:
            try:
                jwks = self._fetcher.get(client.jwks_uri, want_kid=kid)
            except JwksUnavailable as exc:
                raise InvalidClientError(description="the client's JWKS could not be fetched") from exc
        else:
            raise InvalidClientError(description="no keys are registered for this client")
        matching = [
            k
            for k in jwks.get("keys", [])
            if isinstance(k, dict) and k.get("kid") == kid and k.get("kty") == _KTY[alg] and "d" not in k
        ]
        if len(matching) != 1:
            raise InvalidClientError(description="no single registered key has this kid and key type")
        try:
            return KeySet.import_key_set({"keys": matching})
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="the registered key cannot be used") from exc

    def _check_claims(self, client: Client, claims: dict[str, Any]) -> None:
        now = self._now()
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self._token_url not in auds:
            raise InvalidClientError(description="aud must be the token endpoint URL")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidClientError(description="the assertion needs an exp")
        stamp = now.timestamp()
        if exp <= stamp - self._skew:
            raise InvalidClientError(description="the assertion has expired")
        if exp > stamp + self._max + self._skew:
            raise InvalidClientError(description="exp is more than five minutes ahead")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > stamp + self._skew:
            raise InvalidClientError(description="the assertion is not valid yet")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise InvalidClientError(description="the assertion needs a jti")
        if not self._first_use(client.client_id, jti, datetime.fromtimestamp(exp, now.tzinfo)):
            raise InvalidClientError(description="this jti was used before")

    def _first_use(self, client_id: str, jti: str, expires: datetime) -> bool:
        try:
            with self._db.write() as session:  # expired rows go with housekeeping (Sessions.purge_expired)
                session.add(
                    AssertionJtiRow(
                        client_id=client_id, jti=jti, expires_at=expires + timedelta(seconds=self._skew)
                    )
                )
        except IntegrityError:
            log.warning("client_assertion.replayed", extra={"client_id": client_id})
            return False
        return True
