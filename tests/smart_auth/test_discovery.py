"""Discovery (checklist 1-7; Inferno SL well_known_endpoint, well_known_capabilities_stu2,
cors_*, openid_retrieve_configuration, openid_required_configuration_fields, openid_retrieve_jwks)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from smart_auth.server.discovery import CAPABILITIES, OAUTH_URIS
from tests.fhir_schema import assert_valid_r4
from tests.smart_auth.conftest import World

CHECKLIST_CAPABILITIES = {
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
}


@pytest.mark.one_backend
@pytest.mark.parametrize("accept", ["application/json", "application/fhir+json", "*/*", None])
def test_inf_sl_well_known_is_json_whatever_the_accept(world: World, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    r = httpx.get(f"{world.fhir}/.well-known/smart-configuration", headers=headers, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    for key in ("authorization_endpoint", "token_endpoint"):
        assert isinstance(doc[key], str)
    for key in ("capabilities", "grant_types_supported", "code_challenge_methods_supported"):
        assert isinstance(doc[key], list) and doc[key]
    assert {"authorization_code", "client_credentials"} <= set(doc["grant_types_supported"])
    assert "S256" in doc["code_challenge_methods_supported"]
    assert "plain" not in doc["code_challenge_methods_supported"]
    assert doc["issuer"] == world.fhir and doc["jwks_uri"]  # sso-openid-connect
    assert {"private_key_jwt", "client_secret_basic"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert {"RS384", "ES384"} <= set(doc["token_endpoint_auth_signing_alg_values_supported"])
    assert doc["response_types_supported"] == ["code"]
    assert any(s.startswith("patient/ImagingStudy") for s in doc["scopes_supported"])  # US Core kit
    for key in ("introspection_endpoint", "revocation_endpoint", "management_endpoint"):
        assert doc[key]
    assert set(doc["capabilities"]) == CHECKLIST_CAPABILITIES == set(CAPABILITIES)
    for value in doc.values():
        if isinstance(value, str) and value.startswith("http"):
            parts = urlsplit(value)
            assert parts.scheme and parts.netloc  # absolute


@pytest.mark.one_backend
def test_metadata_is_open_and_carries_the_same_oauth_uris(world: World) -> None:
    r = httpx.get(f"{world.fhir}/metadata", timeout=10)
    assert r.status_code == 200
    cs = r.json()
    assert_valid_r4(cs)
    security = cs["rest"][0]["security"]
    coding = security["service"][0]["coding"][0]
    assert (coding["system"], coding["code"]) == (
        "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "SMART-on-FHIR",
    )
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert security["extension"][0]["url"] == OAUTH_URIS
    doc = httpx.get(f"{world.fhir}/.well-known/smart-configuration", timeout=10).json()
    assert uris["authorize"] == doc["authorization_endpoint"]
    assert uris["token"] == doc["token_endpoint"]
    assert uris["introspect"] == doc["introspection_endpoint"]
    assert uris["revoke"] == doc["revocation_endpoint"]
    assert uris["manage"] == doc["management_endpoint"]


@pytest.mark.one_backend
def test_openid_configuration_and_jwks(world: World) -> None:
    doc = httpx.get(f"{world.fhir}/.well-known/openid-configuration", timeout=10).json()
    for key in (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ):
        assert doc[key], key
    assert doc["issuer"] == world.fhir and "RS256" in doc["id_token_signing_alg_values_supported"]
    jwks = httpx.get(doc["jwks_uri"], timeout=10).json()
    assert jwks["keys"] and all(k["kty"] == "RSA" and k["kid"] and "d" not in k for k in jwks["keys"])


def test_cors(world: World) -> None:
    app_origin = "http://127.0.0.1:9"  # the origin of a registered redirect URI
    stranger = "https://evil.example"
    for path in ("/fhir/.well-known/smart-configuration", "/fhir/metadata"):
        r = httpx.get(f"{world.base}{path}", headers={"Origin": stranger}, timeout=10)
        assert r.headers["access-control-allow-origin"] == "*"
    pre = httpx.options(
        world.token_url,
        headers={"Origin": app_origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == app_origin
    r = httpx.post(
        world.token_url, data={"grant_type": "nonsense"}, headers={"Origin": app_origin}, timeout=10
    )
    assert r.headers["access-control-allow-origin"] == app_origin
    r = httpx.post(world.token_url, data={"grant_type": "nonsense"}, headers={"Origin": stranger}, timeout=10)
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(f"{world.fhir}/ImagingStudy", headers={"Origin": app_origin}, timeout=10)
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == app_origin


def test_discovery_documents_are_not_audited_but_api_calls_are(world: World) -> None:
    from sqlalchemy import select

    from storage.audit.models import AuditEventRow

    httpx.get(f"{world.fhir}/metadata", timeout=10)
    httpx.get(f"{world.fhir}/ImagingStudy", params={"name": "Probe"}, timeout=10)
    world.services.audit.flush()
    with world.services.db.read() as s:
        rows = list(s.scalars(select(AuditEventRow)))
    assert [(r.path, r.status, r.outcome, r.action) for r in rows] == [
        ("/fhir/ImagingStudy", 401, "refused", "search")
    ]
