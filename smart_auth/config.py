"""What the authorization server and the resource-server check are built with (no settings read
here: `facade.wiring` fills these from `FACADE_*`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from storage.clock import utcnow

# Access-token lifetimes this server issues, in seconds: at least a minute, at most the hour
# SMART recommends (App Launch 2.2, "access token lifetime").
MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS = 60, 3600


@dataclass(frozen=True)
class AuthConfig:
    base_url: str  # public URL of the server, e.g. https://imaging.example.org
    access_token_seconds: int = 3600  # SMART: at most an hour
    backend_token_seconds: int = 300  # Backend Services: SHOULD be at most 5 minutes
    code_seconds: int = 60
    launch_seconds: int = 300
    request_seconds: int = 600  # an authorization request waiting for login and consent
    session_seconds: int = 8 * 3600  # a browser login; also the life of an online_access token
    offline_refresh_days: int = 90
    assertion_max_seconds: int = 300  # client assertion `exp` at most this far ahead
    clock_skew_seconds: int = 30
    now: Callable[[], datetime] = field(default=utcnow)

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def auth_base(self) -> str:
        return f"{self.base_url}/auth"

    @property
    def issuer(self) -> str:
        """OpenID issuer: the FHIR base, so that `{iss}/.well-known/openid-configuration` is ours."""
        return self.fhir_base

    @property
    def token_url(self) -> str:
        return f"{self.auth_base}/token"

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")


@dataclass(frozen=True)
class ExternalAuthConfig:
    """Resource-server-only mode: tokens come from another authorization server (Keycloak, an EHR).

    Either `jwks_uri` (tokens are JWTs, verified locally) or `introspection_url` (RFC 7662, with
    this server's own client credentials) must be set."""

    issuer: str
    audience: str  # must be among the token's `aud`: our FHIR base URL
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "RS384", "ES256", "ES384", "PS256")
    introspection_url: str | None = None
    introspection_client_id: str | None = None
    introspection_client_secret: str | None = None
    scope_claim: str = "scope"  # Keycloak and Azure put scopes in `scope` or `scp`
    patient_claim: str = "patient"
    fhir_user_claim: str = "fhirUser"
    clock_skew_seconds: int = 30
    now: Callable[[], datetime] = field(default=utcnow)


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: where plain http is acceptable:
    a native app's redirect (RFC 8252 7.3), a server tried out on this machine (RFC 6749 1.6)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
