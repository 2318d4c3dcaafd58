"""Resource-server mode: trusting tokens issued by another authorization server (Keycloak, an EHR).

`JwtVerifier` validates JWT access tokens locally (RFC 9068, RFC 8725): the key by `kid` from
the configured JWKS URL (one rate-limited refetch on an unknown kid), the algorithm from an
allow-list (never `none`, never HS* against a public key), `typ` at+jwt or JWT when present,
`iss` exactly the configured issuer, our FHIR base among `aud`, `exp` / `nbf` with a small
skew. An id_token (aud = a client, typ claim "ID") is therefore never taken as an access token.

`IntrospectionVerifier` asks the issuer (RFC 7662) with our own client credentials, and keeps
an answer for at most 30 seconds and never past the token's `exp`; inactive means 401.

Claim names are configurable: scopes in `scope` (a string) or `scp` (a list), the patient in
`patient` or `patient_id`, fhirUser in `fhirUser` (Keycloak needs mappers for the last two).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from smart_auth.config import ExternalAuthConfig
from smart_auth.jwks_fetch import JwksFetcher, JwksUnavailable
from smart_auth.resource_server.access import Access, VisibilityRules
from smart_auth.scopes import ScopeSet, fhir_user_reference

INTROSPECTION_TTL = 30.0
_FHIR_USER_TYPES = ("Practitioner", "Patient", "RelatedPerson", "Person")
ScopeParser = Callable[[str | None], ScopeSet]


class _Claims:
    def __init__(
        self, config: ExternalAuthConfig, rules: VisibilityRules, parse: Callable[[str | None], ScopeSet]
    ):
        self.config, self.rules, self.parse = config, rules, parse

    def access(self, claims: dict[str, Any]) -> Access | None:
        raw = claims.get(self.config.scope_claim)
        scope = " ".join(raw) if isinstance(raw, list) else raw if isinstance(raw, str) else ""
        patient = claims.get(self.config.patient_claim)
        fhir_user = claims.get(self.config.fhir_user_claim)
        fhir_user = fhir_user_reference(fhir_user, _FHIR_USER_TYPES) if isinstance(fhir_user, str) else None
        client_id = claims.get("client_id") or claims.get("azp")
        return Access(
            client_id if isinstance(client_id, str) else None,
            claims.get("sub") if isinstance(claims.get("sub"), str) else None,
            fhir_user,
            patient if isinstance(patient, str) and patient else None,
            self.parse(scope),
            self.rules,
        )


class JwtVerifier:
    def __init__(
        self,
        config: ExternalAuthConfig,
        rules: VisibilityRules,
        parse: Callable[[str | None], ScopeSet],
        fetcher: JwksFetcher,
    ) -> None:
        if not config.jwks_uri:
            raise ValueError("JWT validation needs the issuer's JWKS URL")
        self._config, self._fetcher = config, fetcher
        self._claims = _Claims(config, rules, parse)

    def verify(self, token: str) -> Access | None:
        config = self._config
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError):
            return None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in config.algorithms or not isinstance(kid, str):
            return None
        if header.get("typ") not in (None, "JWT", "at+jwt", "application/at+jwt"):
            return None
        try:
            jwks = self._fetcher.get(str(config.jwks_uri), want_kid=kid)
            keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            decoded = jwt.decode(token, keys, algorithms=[alg])
        except (JoseError, JwksUnavailable, ValueError):
            return None
        claims = decoded.claims
        now = config.now().timestamp()
        skew = config.clock_skew_seconds
        if claims.get("iss") != config.issuer:
            return None
        aud = claims.get("aud")
        audiences = [a.rstrip("/") for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)]
        if config.audience.rstrip("/") not in audiences:
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now - skew:
            return None
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > now + skew:
            return None
        if claims.get("typ") in ("ID", "Refresh"):
            return None
        return self._claims.access(claims)

    def remembered(self, token: str) -> Access | None:
        """Nothing is remembered: every token's signature and claims are checked (`verify`)."""
        return None


class IntrospectionVerifier:
    def __init__(
        self,
        config: ExternalAuthConfig,
        rules: VisibilityRules,
        parse: Callable[[str | None], ScopeSet],
        *,
        timeout: float = 5.0,
    ) -> None:
        if not (
            config.introspection_url and config.introspection_client_id and config.introspection_client_secret
        ):
            raise ValueError("introspection needs its URL and this server's client id and secret")
        self._config, self._timeout = config, timeout
        self._claims = _Claims(config, rules, parse)
        self._cache: dict[str, tuple[float, Access | None]] = {}
        self._lock = threading.Lock()

    def remembered(self, token: str) -> Access | None:
        """An active answer of the introspection endpoint still within its time to live."""
        with self._lock:
            hit = self._cache.get(token)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def verify(self, token: str) -> Access | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None and hit[0] > now:
                return hit[1]
        config = self._config
        try:
            response = httpx.post(
                str(config.introspection_url),
                data={"token": token, "token_type_hint": "access_token"},
                auth=(str(config.introspection_client_id), str(config.introspection_client_secret)),
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return None  # not cached: the next request asks again
        access = None
        ttl = INTROSPECTION_TTL
        if isinstance(body, dict) and body.get("active") is True:
            exp = body.get("exp")
            wall = config.now().timestamp()
            if isinstance(exp, int | float):
                ttl = min(ttl, exp - wall)
            if ttl > 0 and (body.get("iss") in (None, config.issuer)):
                access = self._claims.access(body)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now + max(ttl, 0.0), access)
        return access
