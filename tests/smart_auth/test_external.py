"""External authorization server mode (checklist 44): tokens of another issuer, checked locally by
JWKS or remotely by introspection. The other issuer is a test IdP signing JWTs (JWKS on 127.0.0.1)
and, for introspection, a second facade's own built-in authorization server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from facade.http import build_http_app
from facade.settings import Settings
from facade.wiring import build_services
from tests.archive import patient_id_of, store
from tests.conftest import serving
from tests.dicom_factory import new_uid
from tests.smart import bearer, forged, issue_token, public_jwks, rsa_key
from tests.smart_auth.conftest import World

ISSUER = "https://idp.example.org/realms/hospital"


def external_facade(tmp_path: Path, **settings: Any) -> Iterator[tuple[str, Any]]:
    sock_settings = Settings(
        data_dir=tmp_path / "ext",
        database_url=f"sqlite:///{tmp_path / 'ext.sqlite3'}",
        timezone="UTC",
        auth_mode="external",
        **settings,
    )
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    built = build_services(sock_settings.model_copy(update={"base_url": base}))
    assert built.settings.insecure_auth() is None
    built.publisher.endpoint()
    try:
        with serving(build_http_app(built), sock) as url:
            yield url, built
    finally:
        built.close()


@pytest.fixture
def idp_key() -> RSAKey:
    return rsa_key("idp-1")


@pytest.fixture
def jwt_facade(tmp_path: Path, jwks_host: dict[str, Any], idp_key: RSAKey) -> Iterator[tuple[str, Any]]:
    jwks_host["jwks"] = public_jwks(idp_key)
    yield from external_facade(
        tmp_path,
        auth_external_issuer=ISSUER,
        auth_external_jwks_uri=jwks_host["url"],
        auth_external_scope_claim="scp",
        auth_external_patient_claim="patient_id",
        auth_external_authorize_url=f"{ISSUER}/protocol/openid-connect/auth",
        auth_external_token_url=f"{ISSUER}/protocol/openid-connect/token",
    )


def signed(
    key: RSAKey, base: str, *, alg: str = "RS256", header: dict[str, Any] | None = None, **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": [f"{base}/fhir", "account"],
        "sub": "user-1",
        "azp": "keycloak-app",
        "exp": now + 300,
        "iat": now,
        "scp": ["patient/ImagingStudy.rs", "patient/Patient.rs"],
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(
        {"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}, body, key, algorithms=[alg]
    )


def test_jwt_from_an_external_issuer(jwt_facade: tuple[str, Any], idp_key: RSAKey, tmp_path: Path) -> None:
    base, built = jwt_facade
    a, b = new_uid(), new_uid()
    store(built, tmp_path, study_uid=a, series_uid=new_uid(), patient_id="P-A")
    store(built, tmp_path, study_uid=b, series_uid=new_uid(), patient_id="P-B")
    patient = patient_id_of(built, a)
    good = signed(idp_key, base, patient_id=patient)
    r = httpx.get(f"{base}/fhir/ImagingStudy", headers=bearer(good), timeout=10)
    assert r.status_code == 200 and [e["resource"]["id"] for e in r.json()["entry"]] == [a]
    assert httpx.get(f"{base}/fhir/ImagingStudy/{b}", headers=bearer(good), timeout=10).status_code == 404
    doc = httpx.get(f"{base}/fhir/.well-known/smart-configuration", timeout=10).json()
    assert doc["issuer"] == ISSUER and doc["token_endpoint"].startswith(ISSUER)
    assert httpx.get(f"{base}/auth/token", timeout=10).status_code == 404  # no built-in server here
    now = int(time.time())
    refused = {
        "wrong issuer": signed(idp_key, base, patient_id=patient, iss="https://other.example"),
        "not for us": signed(idp_key, base, patient_id=patient, aud="account"),
        "expired": signed(idp_key, base, patient_id=patient, exp=now - 120),
        "not yet": signed(idp_key, base, patient_id=patient, nbf=now + 600),
        "an id_token": signed(idp_key, base, patient_id=patient, typ="ID"),
        "HS256 keyed with the public key": forged(
            {"alg": "HS256", "kid": "idp-1", "typ": "JWT"},
            {"iss": ISSUER, "aud": f"{base}/fhir", "exp": now + 300, "patient_id": patient},
            idp_key.as_pem(private=False),
        ),
        "alg none": forged(
            {"alg": "none", "kid": "idp-1"}, {"iss": ISSUER, "aud": f"{base}/fhir", "exp": now + 300}
        ),
        "unknown kid": signed(rsa_key("idp-9"), base, patient_id=patient),
        "bad typ": signed(idp_key, base, patient_id=patient, header={"typ": "dpop+jwt"}),
    }
    for name, token in refused.items():
        r = httpx.get(f"{base}/fhir/ImagingStudy", headers=bearer(token), timeout=10)
        assert r.status_code == 401, name


def test_unknown_kid_refetches_once(
    jwt_facade: tuple[str, Any], idp_key: RSAKey, jwks_host: dict[str, Any]
) -> None:
    base, _ = jwt_facade
    assert (
        httpx.get(
            f"{base}/fhir/Endpoint",
            headers=bearer(signed(idp_key, base, scp=["system/Endpoint.rs"])),
            timeout=10,
        ).status_code
        == 200
    )
    rotated = rsa_key("idp-2")
    jwks_host["jwks"] = public_jwks(idp_key, rotated)
    r = httpx.get(
        f"{base}/fhir/Endpoint", headers=bearer(signed(rotated, base, scp=["system/Endpoint.rs"])), timeout=10
    )
    assert r.status_code == 200 and jwks_host["fetches"] == 2
    for _ in range(3):
        stranger = signed(rsa_key("idp-x"), base)
        assert httpx.get(f"{base}/fhir/Endpoint", headers=bearer(stranger), timeout=10).status_code == 401
    assert jwks_host["fetches"] == 2


def test_introspection_against_another_authorization_server(world: World, tmp_path: Path) -> None:
    rs = world.auth.registry.add_client(
        name="Resource server",
        kind="confidential",
        redirect_uris=["https://rs.example/cb"],
        can_introspect=True,
    )
    assert rs.secret
    gen = external_facade(
        tmp_path,
        auth_external_issuer=world.fhir,
        auth_external_introspection_url=f"{world.base}/auth/introspect",
        auth_external_client_id=rs.client.client_id,
        auth_external_client_secret=rs.secret,
    )
    base, _ = next(gen)
    try:
        token = issue_token(world.services, "system/*.rs")
        assert httpx.get(f"{base}/fhir/Endpoint", headers=bearer(token), timeout=10).status_code == 200
        assert (
            httpx.get(f"{base}/fhir/Endpoint", headers=bearer("not-a-token"), timeout=10).status_code == 401
        )
    finally:
        gen.close()


def test_external_mode_refuses_to_serve_half_configured() -> None:
    assert Settings(auth_mode="external").insecure_auth() is not None
    assert Settings(auth_mode="external", auth_external_issuer=ISSUER).insecure_auth() is not None
    assert (
        Settings(
            auth_mode="external", auth_external_issuer=ISSUER, auth_external_introspection_url="https://x/i"
        ).insecure_auth()
        is not None
    )
    assert Settings(base_url="http://imaging.example.org").insecure_auth() is not None  # OAuth needs TLS
    assert Settings(base_url="https://imaging.example.org").insecure_auth() is None
    assert Settings().insecure_auth() is None  # 127.0.0.1 is loopback
