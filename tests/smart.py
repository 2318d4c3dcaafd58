"""Test helpers for SMART: client keys and assertions, PKCE, and a browser-like walk through the
real authorize -> login -> consent pages with an httpx client that keeps cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from facade.wiring import Services

PASSWORD = "correct horse battery staple"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def issue_token(
    services: Services,
    scope: str,
    *,
    patient: str | None = None,
    fhir_user: str | None = None,
    client_id: str = "tests",
) -> str:
    """A token straight from the token store (what the token endpoint stores, minus HTTP)."""
    auth = services.auth.builtin
    assert auth is not None
    context = {k: v for k, v in (("patient", patient), ("fhirUser", fhir_user)) if v}
    grant = auth.tokens.new_grant(client_id=client_id, user_id=None, scope=scope, context=context)
    issued = auth.tokens.issue(
        grant, scope=scope, lifetime=3600, fhir_user=fhir_user, patient=patient, refresh_lifetime=None
    )
    return issued.access_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- keys and assertions ------------------------------------------------------------------------


def rsa_key(kid: str = "rsa-1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def ec_key(kid: str = "ec-1") -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": kid})


def public_jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def assertion(
    client_id: str,
    token_url: str,
    key: RSAKey | ECKey,
    *,
    alg: str | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A client assertion as Inferno builds it: exp = now + 300, a 64-hex jti, no jku."""
    alg = alg or ("ES384" if isinstance(key, ECKey) else "RS384")
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + 300,
        "jti": secrets.token_hex(32),
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    head = {"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}
    return jwt.encode(head, body, key, algorithms=[alg])


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None = None) -> str:
    """A JWT an attacker makes: unsigned (`alg: none`) or HMAC-signed with `secret` (HS/RS
    confusion: the secret being the victim's public key)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head, body = b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()) if secret else ""
    return f"{head}.{body}.{sig}"


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge): Inferno's uuid-uuid style verifier, 73 characters."""
    import uuid

    verifier = f"{uuid.uuid4()}-{uuid.uuid4()}"
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- the browser flow ---------------------------------------------------------------------------


def form_fields(page: str) -> dict[str, str]:
    return {
        html.unescape(m.group(1)): html.unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Launch:
    """One app's run through the authorization code flow against a live server."""

    base: str  # http://127.0.0.1:port
    client_id: str
    redirect_uri: str
    scope: str
    verifier: str = ""
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    browser: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"

    def authorize(self, *, method: str = "GET", **extra: str | None) -> httpx.Response:
        verifier, challenge = pkce()
        self.verifier = verifier
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "aud": self.fhir,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        clean = {k: v for k, v in params.items() if v is not None}
        url = f"{self.base}/auth/authorize"
        if method == "POST":
            return self.browser.post(url, data=clean)
        return self.browser.get(url, params=clean)

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, (response.status_code, response.text[:300])
        return self.browser.get(urljoin(str(response.url), response.headers["location"]))

    def sign_in(self, login_page: httpx.Response, username: str, password: str = PASSWORD) -> httpx.Response:
        fields = form_fields(login_page.text)
        return self.browser.post(
            urljoin(str(login_page.url), "login"), data={**fields, "username": username, "password": password}
        )

    def decide(
        self,
        consent_page: httpx.Response,
        *,
        allow: bool = True,
        scopes: list[str] | None = None,
        patient: str | None = None,
    ) -> httpx.Response:
        fields = form_fields(consent_page.text)
        offered = re.findall(r'name="scope" value="([^"]+)"', consent_page.text)
        chosen = offered if scopes is None else scopes
        data: dict[str, str | list[str]] = {**fields, "decision": "allow" if allow else "deny"}
        data["scope"] = [html.unescape(s) for s in chosen]
        if patient:
            data["patient"] = patient
        return self.browser.post(urljoin(str(consent_page.url), "consent"), data=data)

    def code(
        self,
        username: str,
        *,
        scopes: list[str] | None = None,
        patient: str | None = None,
        **extra: str | None,
    ) -> str:
        """authorize, sign in, allow; the code from the redirect (state checked)."""
        page = self.follow(self.authorize(**extra))
        consent = page if "Allow access?" in page.text else self.follow(self.sign_in(page, username))
        done = self.decide(consent, scopes=scopes, patient=patient)
        assert done.status_code == 303, done.text[:500]
        location = done.headers["location"]
        assert location.startswith(self.redirect_uri)
        query = query_of(location)
        assert query["state"] == self.state, query
        return query["code"]

    def exchange(
        self, code: str, *, auth: tuple[str, str] | None = None, **extra: str | None
    ) -> httpx.Response:
        data: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            "client_id": self.client_id,
        }
        data.update(extra)
        return httpx.post(
            f"{self.base}/auth/token",
            data={k: v for k, v in data.items() if v is not None},
            auth=auth,
            timeout=30,
        )

    def token(self, username: str, **extra: Any) -> dict[str, Any]:
        response = self.exchange(self.code(username, **extra))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def launch_url(base: str, **params: str) -> str:
    return f"{base}?{urlencode(params)}"
