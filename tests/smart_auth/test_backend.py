"""Backend Services and client assertions (checklist 23-26, 32-36, 45-46; Inferno SL
backend_services_*, token_introspection_*, G10 token_revocation), one test per attack."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.smart import ASSERTION_TYPE, assertion, bearer, ec_key, forged, public_jwks, rsa_key
from tests.smart_auth.conftest import World


def client_credentials(world: World, client_assertion: str | None, **extra: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": ASSERTION_TYPE,
        **extra,
    }
    if client_assertion is not None:
        data["client_assertion"] = client_assertion
    return httpx.post(world.token_url, data=data, timeout=10)


def good(world: World, **claims: Any) -> str:
    return assertion(world.backend_id, world.token_url, world.backend_key, **claims)


def test_inf_sl_backend_services_success(world: World) -> None:
    r = client_credentials(world, good(world))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer" and body["scope"] == "system/*.rs"
    assert 0 < body["expires_in"] <= 300 and "refresh_token" not in body
    assert "no-store" in r.headers["cache-control"]
    seen = httpx.get(f"{world.fhir}/ImagingStudy", headers=bearer(body["access_token"]), timeout=10).json()
    assert seen["total"] == 2  # system/ sees the whole archive


def test_inf_sl_backend_invalid_grant_type(world: World) -> None:
    r = client_credentials(world, good(world), grant_type="not_a_grant_type")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_inf_sl_backend_invalid_client_assertion_type(world: World) -> None:
    r = client_credentials(world, good(world), client_assertion_type="not_an_assertion_type")
    assert r.status_code in (400, 401)


def test_scopes_beyond_the_registration_are_invalid_scope(world: World) -> None:
    r = client_credentials(world, good(world), scope="system/*.cruds patient/*.rs")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    narrowed = client_credentials(world, good(world), scope="system/ImagingStudy.rs system/Patient.d")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "system/ImagingStudy.rs"


def claims_for(world: World, **overrides: Any) -> dict[str, Any]:
    base = {
        "iss": world.backend_id,
        "sub": world.backend_id,
        "aud": world.token_url,
        "exp": int(time.time()) + 300,
        "jti": "x" * 64,
    }
    return {**base, **overrides}


def attacks(world: World) -> dict[str, str]:
    other_key = ec_key(world.backend_key.kid)  # same kid, a key the client never registered
    rsa = rsa_key(world.backend_key.kid)
    public_pem = json.dumps(world.backend_key.as_dict(private=False)).encode()
    now = int(time.time())
    return {
        "alg none": forged({"alg": "none", "kid": world.backend_key.kid}, claims_for(world)),
        "HS256 keyed with the public key": forged(
            {"alg": "HS256", "kid": world.backend_key.kid, "typ": "JWT"}, claims_for(world), public_pem
        ),
        "RS256 is not allowed": assertion(world.backend_id, world.token_url, rsa, alg="RS256"),
        "RS384 with an EC kid": assertion(world.backend_id, world.token_url, rsa, alg="RS384"),
        "signed by another key": assertion(world.backend_id, world.token_url, other_key),
        "expired": good(world, exp=now - 120),
        "exp more than 5 minutes ahead": good(world, exp=now + 3600),
        "wrong aud": good(world, aud=f"{world.base}/fhir"),
        "no jti": good(world, jti=None),
        "iss is not sub": good(world, iss="someone-else"),
        "unknown client": assertion("nobody", world.token_url, world.backend_key),
        "unknown kid": assertion(world.backend_id, world.token_url, ec_key("other-kid")),
        "unregistered jku": assertion(
            world.backend_id,
            world.token_url,
            world.backend_key,
            header={"jku": "http://127.0.0.1:9/attacker-jwks.json"},
        ),
        "embedded jwk is ignored": assertion(
            world.backend_id, world.token_url, other_key, header={"jwk": other_key.as_dict(private=False)}
        ),
        "not a JWT": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "attack",
    [
        "alg none",
        "HS256 keyed with the public key",
        "RS256 is not allowed",
        "RS384 with an EC kid",
        "signed by another key",
        "expired",
        "exp more than 5 minutes ahead",
        "wrong aud",
        "no jti",
        "iss is not sub",
        "unknown client",
        "unknown kid",
        "unregistered jku",
        "embedded jwk is ignored",
        "not a JWT",
    ],
)
def test_inf_sl_backend_invalid_jwt(world: World, attack: str) -> None:
    r = client_credentials(world, attacks(world)[attack])
    assert r.status_code in (400, 401), (attack, r.text)
    assert r.json()["error"] == "invalid_client"


def test_a_replayed_jti_is_refused(world: World) -> None:
    signed = good(world)
    assert client_credentials(world, signed).status_code == 200
    replay = client_credentials(world, signed)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"


def test_a_backend_client_cannot_use_the_code_flow(world: World) -> None:
    r = httpx.post(
        world.token_url,
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": good(world),
        },
        timeout=10,
    )
    assert r.status_code in (400, 401)


def test_keys_by_jwks_url_cached_and_refetched_on_rotation(world: World, jwks_host: dict[str, Any]) -> None:
    first, second = rsa_key("k-1"), ec_key("k-2")
    jwks_host["jwks"] = public_jwks(first)
    assert world.auth is not None
    client = world.auth.registry.add_client(
        name="By URL", kind="backend", jwks_uri=jwks_host["url"], scope="system/*.rs"
    ).client
    token_url = world.token_url

    def ask(key: Any, **header: str) -> httpx.Response:
        return httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": "system/*.rs",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion(client.client_id, token_url, key, header=header or None),
            },
            timeout=10,
        )

    assert ask(first).status_code == 200
    assert ask(first, jku=jwks_host["url"]).status_code == 200  # jku equal to the registered URL
    assert jwks_host["fetches"] == 1  # cached for its max-age
    jwks_host["jwks"] = public_jwks(first, second)  # the client rotates in a new key
    assert ask(second).status_code == 200  # an unknown kid makes one refetch
    assert jwks_host["fetches"] == 2
    assert ask(ec_key("k-3")).status_code == 401 or ask(ec_key("k-3")).status_code == 400
    assert jwks_host["fetches"] == 2  # not more than once a minute


def backend_token(world: World) -> str:
    r = client_credentials(world, good(world))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def introspect(world: World, token: str, *, as_bearer: str | None = None) -> httpx.Response:
    if as_bearer:
        return httpx.post(
            f"{world.base}/auth/introspect", data={"token": token}, headers=bearer(as_bearer), timeout=10
        )
    return httpx.post(
        f"{world.base}/auth/introspect",
        data={
            "token": token,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": good(world),
        },
        timeout=10,
    )


def test_inf_sl_token_introspection(world: World) -> None:
    app = world.launch("launch/patient openid fhirUser offline_access patient/*.rs")
    issued = app.token("doc", patient=world.alice)
    r = introspect(world, issued["access_token"])
    assert r.status_code == 200
    body = r.json()
    assert body["active"] is True and body["client_id"] == world.public_id
    assert set(body["scope"].split()) == set(issued["scope"].split())
    assert body["exp"] >= time.time() - 600 and body["patient"] == issued["patient"]
    assert (
        body["iss"] == world.fhir
        and body["sub"]
        and body["fhirUser"].startswith(f"{world.fhir}/Practitioner/")
    )
    by_bearer = introspect(world, issued["access_token"], as_bearer=backend_token(world))
    assert by_bearer.status_code == 200 and by_bearer.json()["active"] is True
    assert introspect(world, "invalid_token_value").json() == {"active": False}
    rt = introspect(world, issued["refresh_token"]).json()
    assert rt["active"] is True and rt["client_id"] == world.public_id


def test_introspection_needs_a_resource_server(world: World) -> None:
    r = httpx.post(f"{world.base}/auth/introspect", data={"token": "x"}, timeout=10)
    assert r.status_code in (400, 401)
    app_token = world.launch("launch/patient patient/*.rs").token("doc", patient=world.alice)["access_token"]
    r = introspect(world, backend_token(world), as_bearer=app_token)  # an app's token may not introspect
    assert r.status_code == 401


def test_g10_token_revocation(world: World) -> None:
    app = world.launch("launch/patient offline_access patient/*.rs")
    issued = app.token("doc", patient=world.alice)
    r = httpx.post(
        f"{world.base}/auth/revoke",
        data={"token": issued["access_token"], "client_id": world.public_id},
        timeout=10,
    )
    assert r.status_code == 200
    read = httpx.get(
        f"{world.fhir}/Patient/{world.alice}", headers=bearer(issued["access_token"]), timeout=10
    )
    assert read.status_code == 401 and 'error="invalid_token"' in read.headers["www-authenticate"]
    refreshed = httpx.post(
        world.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": world.public_id,
        },
        timeout=10,
    )
    assert refreshed.status_code in (400, 401)
    assert introspect(world, issued["access_token"]).json() == {"active": False}
    unknown = httpx.post(
        f"{world.base}/auth/revoke", data={"token": "never-issued", "client_id": world.public_id}, timeout=10
    )
    assert unknown.status_code == 200  # RFC 7009 2.2
