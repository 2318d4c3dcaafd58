"""`system/` scopes are for Backend Services (client_credentials) only: refused at registration of
any other client, and never granted through the authorization code flow, whatever a client's row
says (a patient user must not leave her compartment)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update

from facade.settings import Settings
from smart_auth.server.registry import APP_SCOPE
from storage.auth.models import OAuthClientRow
from storage.errors import Invalid
from tests.smart import PASSWORD, bearer, pkce, query_of
from tests.smart_auth.conftest import APP_REDIRECT, World
from tests.smart_auth.test_admin import facade

SYSTEM = "http://smarthealthit.org/fhir/scopes/system/*.rs"


@pytest.mark.parametrize("kind", ["public", "confidential", "asymmetric"])
@pytest.mark.parametrize("system", ["system/*.rs", "system/Patient.read", SYSTEM])
def test_only_a_backend_client_registers_system_scopes(world: World, kind: str, system: str) -> None:
    with pytest.raises(Invalid, match="backend"):
        world.auth.registry.add_client(
            name="Viewer",
            kind=kind,  # type: ignore[arg-type]
            redirect_uris=[APP_REDIRECT],
            jwks_uri="https://app.example/jwks.json",
            scope=f"launch/patient patient/*.rs {system}",
        )


def test_client_add_refuses_system_scopes_for_a_browser_app(world: World, settings: Settings) -> None:
    done = facade(
        settings,
        "client",
        "add",
        "--name",
        "Wide Viewer",
        "--kind",
        "public",
        "--redirect-uri",
        "https://viewer.example/cb",
        "--scope",
        "launch/patient patient/*.rs system/*.rs",
    )
    assert done.returncode == 2 and "backend clients only" in done.stderr
    assert "Wide Viewer" not in facade(settings, "client", "list").stdout


def _register_system_on_public_client(world: World) -> None:
    """A row as an older version (or a hand edit) may have left it: system/ in a public client."""
    with world.services.db.write() as s:
        s.execute(
            update(OAuthClientRow)
            .where(OAuthClientRow.client_id == world.public_id)
            .values(scope=f"{APP_SCOPE} system/*.rs")
        )


def test_a_patient_user_never_gets_system_scopes_through_a_browser_app(world: World) -> None:
    _register_system_on_public_client(world)
    app = world.launch("launch/patient patient/*.rs system/*.rs")
    login = app.follow(app.authorize())
    consent = app.follow(app.sign_in(login, "alice"))
    assert "system/*.rs" not in consent.text
    done = app.decide(consent, scopes=["launch/patient", "patient/*.rs", "system/*.rs"])
    body = app.exchange(query_of(done.headers["location"])["code"]).json()
    assert body["scope"] == "launch/patient patient/*.rs" and body["patient"] == world.alice
    token = body["access_token"]
    bob = httpx.get(f"{world.fhir}/Patient/{world.bob}", headers=bearer(token), timeout=10)
    assert bob.status_code == 404
    seen = httpx.get(f"{world.fhir}/ImagingStudy", headers=bearer(token), timeout=10).json()
    assert [e["resource"]["id"] for e in seen["entry"]] == [world.study_a]


def test_only_system_scopes_asked_by_a_browser_app_is_invalid_scope(world: World) -> None:
    _register_system_on_public_client(world)
    app = world.launch("system/*.rs")
    query = query_of(app.authorize().headers["location"])
    assert query["error"] == "invalid_scope" and query["state"] == app.state


def test_the_token_endpoint_drops_system_scopes_a_grant_holds(world: World) -> None:
    """Defense in depth: even a grant stored with a system/ scope yields a token without it."""
    user = world.auth.registry.login("alice", PASSWORD)
    assert user is not None
    grant = world.auth.tokens.new_grant(
        client_id=world.public_id,
        user_id=user.id,
        scope="patient/*.rs system/*.rs",
        context={"patient": world.alice, "fhirUser": user.fhir_user},
    )
    verifier, challenge = pkce()
    code = world.auth.tokens.new_code(
        grant, redirect_uri=APP_REDIRECT, code_challenge=challenge, nonce=None, lifetime=60
    )
    r = httpx.post(
        world.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
            "client_id": world.public_id,
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "patient/*.rs"
    bob = httpx.get(f"{world.fhir}/Patient/{world.bob}", headers=bearer(body["access_token"]), timeout=10)
    assert bob.status_code == 404
