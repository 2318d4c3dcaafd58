"""Standalone and EHR launch through the real pages (checklist 8-22, 27-31; Inferno SL app_redirect,
code_received, token_exchange, token_response_body/headers, openid_*, G10 patient_context,
smart_invalid_pkce, smart_invalid_token, smart_app_launch_invalid_aud)."""

from __future__ import annotations

import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import Clock
from tests.fhir_schema import assert_valid_r4
from tests.smart import ASSERTION_TYPE, Launch, assertion, bearer, form_fields, pkce, query_of
from tests.smart_auth.conftest import APP_REDIRECT, World

STANDALONE = "launch/patient openid fhirUser offline_access patient/*.rs"
EHR = "launch openid fhirUser offline_access patient/*.rs"


def assert_token_headers(r: httpx.Response) -> None:
    assert "no-store" in r.headers["cache-control"] and "no-cache" in r.headers["pragma"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_inf_sl_standalone_launch_practitioner_picks_the_patient(world: World, method: str) -> None:
    app = world.launch(STANDALONE)
    login = app.follow(app.authorize(method=method))
    assert login.status_code == 200 and "Sign in" in login.text
    assert (
        login.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in login.headers["content-security-policy"]
    )
    consent = app.follow(app.sign_in(login, "doc"))
    assert "Choose the patient" in consent.text and "Probe" in consent.text
    no_patient = app.decide(consent)
    assert no_patient.status_code == 200 and "Choose the patient" in no_patient.text
    done = app.decide(no_patient, patient=world.bob)
    assert done.status_code == 303  # never 307 (RFC 9700 4.12)
    query = query_of(done.headers["location"])
    assert query["state"] == app.state
    r = app.exchange(query["code"])
    assert r.status_code == 200, r.text
    assert_token_headers(r)
    body = r.json()
    assert body["token_type"].lower() == "bearer" and isinstance(body["expires_in"], int)
    assert 0 < body["expires_in"] <= 3600
    assert body["scope"] == STANDALONE and body["patient"] == world.bob  # a bare id
    assert body["refresh_token"] and body["need_patient_banner"] is True
    assert httpx.get(body["smart_style_url"], timeout=10).json()["color_background"]
    claims = verify_id_token(world, body["id_token"], app.client_id)
    practitioner = httpx.get(claims["fhirUser"], headers=bearer(body["access_token"]), timeout=10)
    assert practitioner.status_code == 200 and practitioner.json()["resourceType"] == "Practitioner"
    assert_valid_r4(practitioner.json())
    seen = httpx.get(f"{world.fhir}/ImagingStudy", headers=bearer(body["access_token"]), timeout=10).json()
    assert [e["resource"]["id"] for e in seen.get("entry", [])] == [world.study_b]


def verify_id_token(world: World, token: str, client_id: str) -> dict[str, object]:
    """Inferno openid_token_header / payload / fhir_user_claim."""
    config = httpx.get(f"{world.fhir}/.well-known/openid-configuration", timeout=10).json()
    keys = KeySet.import_key_set(httpx.get(config["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256" and decoded.header["kid"]
    claims = decoded.claims
    assert claims["iss"] == config["issuer"] and claims["aud"] == client_id
    assert claims["exp"] > time.time() and claims["iat"] <= time.time() + 5 and claims["sub"]
    assert str(claims["fhirUser"]).startswith(f"{world.fhir}/Practitioner/") or str(
        claims["fhirUser"]
    ).startswith(f"{world.fhir}/Patient/")
    return dict(claims)


def test_a_patient_user_gets_their_own_context_without_a_picker(world: World) -> None:
    app = world.launch(STANDALONE)
    login = app.follow(app.authorize())
    consent = app.follow(app.sign_in(login, "alice"))
    assert "Choose the patient" not in consent.text and "Probe, Alice" not in consent.text
    done = app.decide(consent)
    body = app.exchange(query_of(done.headers["location"])["code"]).json()
    assert body["patient"] == world.alice
    claims = verify_id_token(world, body["id_token"], app.client_id)
    assert claims["fhirUser"] == f"{world.fhir}/Patient/{world.alice}"


def ehr_launch(world: World, **context: str) -> dict[str, str]:
    r = httpx.post(
        f"{world.base}/auth/launch",
        data={"client_id": world.public_id, **context},
        auth=(world.ehr_id, world.ehr_secret),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    body: dict[str, str] = r.json()
    return body


def test_inf_sl_ehr_launch_carries_the_ehr_context(world: World) -> None:
    created = ehr_launch(
        world, patient=world.bob, encounter="enc-1", need_patient_banner="false", intent="review"
    )
    launched = query_of(created["launch_url"])
    assert created["launch_url"].startswith("http://127.0.0.1:9/app/launch?")
    assert launched["iss"] == world.fhir  # byte for byte what the app will use as aud
    app = world.launch(EHR)
    login = app.follow(app.authorize(launch=launched["launch"]))
    consent = app.follow(app.sign_in(login, "doc"))
    assert "Probe, Bob" in consent.text.replace("Probe^Bob", "Probe, Bob") or "Patient:" in consent.text
    done = app.decide(consent)
    body = app.exchange(query_of(done.headers["location"])["code"]).json()
    assert body["patient"] == world.bob and body["encounter"] == "enc-1"
    assert body["need_patient_banner"] is False and body["intent"] == "review"
    patient = httpx.get(
        f"{world.fhir}/Patient/{body['patient']}", headers=bearer(body["access_token"]), timeout=10
    )
    assert patient.status_code == 200  # G10 patient_context


def test_launch_is_single_use_and_must_be_known(world: World) -> None:
    launch = query_of(ehr_launch(world, patient=world.bob)["launch_url"])["launch"]
    first = world.launch(EHR)
    assert first.authorize(launch=launch).status_code == 303
    for value in (launch, "not-a-launch"):
        app = world.launch(EHR)
        r = app.authorize(launch=value)
        query = query_of(r.headers["location"])
        assert query["error"] == "invalid_request" and query["state"] == app.state and "code" not in query
    app = world.launch(EHR)  # the launch scope without a launch
    assert query_of(app.authorize().headers["location"])["error"] == "invalid_request"


def test_ehr_launch_endpoint_needs_an_ehr(world: World) -> None:
    r = httpx.post(f"{world.base}/auth/launch", data={"patient": world.bob}, timeout=10)
    assert r.status_code in (400, 401)
    r = httpx.post(
        f"{world.base}/auth/launch",
        data={"patient": world.bob},
        auth=(world.confidential_id, world.confidential_secret),
        timeout=10,
    )
    assert r.status_code == 403
    r = httpx.post(
        f"{world.base}/auth/launch",
        data={"patient": "nobody"},
        auth=(world.ehr_id, world.ehr_secret),
        timeout=10,
    )
    assert r.status_code == 400


@pytest.mark.parametrize(
    "redirect_uri",
    [
        APP_REDIRECT + "/",
        APP_REDIRECT + "?x=1",
        APP_REDIRECT.upper(),
        APP_REDIRECT.replace("http:", "https:"),
        "https://evil.example/callback",
    ],
)
def test_redirect_uri_must_match_exactly_and_errors_are_a_page(world: World, redirect_uri: str) -> None:
    app = Launch(world.base, world.public_id, redirect_uri, STANDALONE)
    r = app.authorize()
    assert r.status_code == 400 and "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")


def test_unknown_client_is_a_page_not_a_redirect(world: World) -> None:
    r = Launch(world.base, "nobody", APP_REDIRECT, STANDALONE).authorize()
    assert r.status_code == 400 and "location" not in r.headers


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),  # authlib would default to plain
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"aud": "http://127.0.0.1:9/fhir"}, "invalid_request"),  # G10 invalid aud
        ({"aud": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),  # no implicit flow
        ({"scope": "patient/Medication.rs"}, "invalid_scope"),
    ],
)
def test_authorize_errors_go_back_with_state_and_no_code(
    world: World, extra: dict[str, str | None], error: str
) -> None:
    app = world.launch(STANDALONE)
    r = app.authorize(**extra)
    assert r.status_code in (302, 303)
    query = query_of(r.headers["location"])
    assert query["error"] == error and query["state"] == app.state and "code" not in query


@pytest.mark.parametrize("state", [None, ""])
def test_authorize_without_state_is_refused_before_the_login_page(world: World, state: str | None) -> None:
    app = world.launch(STANDALONE)
    r = app.authorize(state=state)
    assert r.status_code in (302, 303)
    location = r.headers["location"]
    assert location.startswith(APP_REDIRECT)
    query = query_of(location)
    assert query["error"] == "invalid_request" and "state" in query["error_description"]
    assert "code" not in query and not query.get("state")


def test_aud_trailing_slash_and_odd_state_are_fine(world: World) -> None:
    app = world.launch(STANDALONE)
    app.state = "a b&c=d/é+"
    assert app.code("doc", patient=world.alice, aud=world.fhir + "/")


@pytest.mark.parametrize("verifier", [None, "", "wrong-" + "x" * 40, "challenge"])
def test_g10_invalid_pkce_verifier(world: World, verifier: str | None) -> None:
    app = world.launch(STANDALONE)
    code = app.code("doc", patient=world.alice)
    if verifier == "challenge":  # a plain-method attempt: the challenge itself
        verifier = pkce_challenge(app.verifier)
    r = app.exchange(code, code_verifier=verifier)
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_request", "invalid_grant")
    assert app.exchange(code).status_code == 400  # the code was burned by the failed attempt


def pkce_challenge(verifier: str) -> str:
    import base64
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def test_g10_bad_code_and_bad_client(world: World) -> None:
    app = world.launch(STANDALONE)
    code = app.code("doc", patient=world.alice)
    assert app.exchange("BAD_CODE").status_code == 400
    assert app.exchange(code, client_id="BAD_CLIENT_ID").status_code in (400, 401)


def test_reused_code_is_refused_and_revokes_what_it_gave(world: World) -> None:
    app = world.launch(STANDALONE)
    code = app.code("doc", patient=world.alice)
    first = app.exchange(code).json()
    assert (
        httpx.get(
            f"{world.fhir}/Patient/{world.alice}", headers=bearer(first["access_token"]), timeout=10
        ).status_code
        == 200
    )
    again = app.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    r = httpx.get(f"{world.fhir}/Patient/{world.alice}", headers=bearer(first["access_token"]), timeout=10)
    assert r.status_code == 401


def test_code_expires_after_a_minute(world: World, clock: Clock) -> None:
    app = world.launch(STANDALONE)
    code = app.code("doc", patient=world.alice)
    clock.advance(61)
    r = app.exchange(code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_redirect_uri_at_the_token_endpoint_must_be_the_same(world: World) -> None:
    app = world.launch(STANDALONE)
    code = app.code("doc", patient=world.alice)
    assert app.exchange(code, redirect_uri=APP_REDIRECT + "/").status_code == 400


def test_user_denies_or_unticks(world: World) -> None:
    app = world.launch(STANDALONE)
    consent = app.follow(app.sign_in(app.follow(app.authorize()), "doc"))
    denied = query_of(app.decide(consent, allow=False).headers["location"])
    assert denied["error"] == "access_denied" and denied["state"] == app.state
    app = world.launch(STANDALONE)
    body = app.token("doc", patient=world.alice, scopes=["launch/patient", "patient/*.rs"])
    assert (
        body["scope"] == "launch/patient patient/*.rs"
        and "refresh_token" not in body
        and "id_token" not in body
    )


def test_consent_form_needs_its_csrf_token(world: World) -> None:
    app = world.launch(STANDALONE)
    consent = app.follow(app.sign_in(app.follow(app.authorize()), "doc"))
    fields = form_fields(consent.text)
    r = app.browser.post(
        f"{world.base}/auth/consent",
        data={"request": fields["request"], "csrf": "forged", "decision": "allow", "scope": "patient/*.rs"},
    )
    assert r.status_code == 403 and "location" not in r.headers


def test_wrong_password_is_refused_on_the_page(world: World) -> None:
    app = world.launch(STANDALONE)
    login = app.follow(app.authorize())
    r = app.sign_in(login, "doc", "not the password at all")
    assert r.status_code == 401 and "not right" in r.text and "facade_session" not in r.cookies


def test_confidential_symmetric_client(world: World) -> None:
    app = world.launch(
        "launch/patient patient/ImagingStudy.rs offline_access", client_id=world.confidential_id
    )
    code = app.code("doc", patient=world.alice)
    assert app.exchange(code, auth=(world.confidential_id, "wrong")).status_code == 401
    code = app.code("doc", patient=world.alice)
    no_secret = app.exchange(code)  # a confidential client must authenticate
    assert no_secret.status_code in (400, 401)
    code = app.code("doc", patient=world.alice)
    r = app.exchange(code, auth=(world.confidential_id, world.confidential_secret))
    assert r.status_code == 200, r.text
    refreshed = httpx.post(
        world.token_url,
        data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
        auth=(world.confidential_id, world.confidential_secret),
        timeout=10,
    )
    assert refreshed.status_code == 200


def test_confidential_asymmetric_client(world: World) -> None:
    app = world.launch(
        "launch/patient patient/ImagingStudy.rs openid fhirUser", client_id=world.asymmetric_id
    )
    code = app.code("doc", patient=world.alice)
    r = app.exchange(
        code,
        client_id=None,
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=assertion(world.asymmetric_id, world.token_url, world.asymmetric_key),
    )
    assert r.status_code == 200, r.text
    verify_id_token(world, r.json()["id_token"], world.asymmetric_id)


def test_inf_sl_refresh_without_and_with_scope(world: World) -> None:
    app = world.launch(STANDALONE)
    first = app.token("doc", patient=world.alice)
    plain = refresh(world, first["refresh_token"])
    assert plain.status_code == 200
    assert_token_headers(plain)
    body = plain.json()
    assert (
        body["scope"] == STANDALONE
        and body["expires_in"] > 0
        and body["refresh_token"] != first["refresh_token"]
    )
    assert body["patient"] == world.alice
    narrowed = refresh(world, body["refresh_token"], scope="patient/*.rs")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "patient/*.rs"
    wider = refresh(world, narrowed.json()["refresh_token"], scope="patient/*.rs user/*.rs")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    assert refresh(world, "not-a-refresh-token").status_code in (400, 401)


def test_a_replayed_refresh_token_revokes_the_grant(world: World) -> None:
    app = world.launch(STANDALONE)
    first = app.token("doc", patient=world.alice)
    second = refresh(world, first["refresh_token"]).json()
    stolen = refresh(world, first["refresh_token"])  # rotated away: presenting it again is theft
    assert stolen.status_code == 400
    r = httpx.get(f"{world.fhir}/Patient/{world.alice}", headers=bearer(second["access_token"]), timeout=10)
    assert r.status_code == 401
    assert refresh(world, second["refresh_token"]).status_code == 400


def refresh(
    world: World, token: str, *, scope: str | None = None, client_id: str | None = None
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id or world.public_id}
    if scope is not None:
        data["scope"] = scope
    return httpx.post(world.token_url, data=data, timeout=10)


def test_refresh_token_is_bound_to_its_client(world: World) -> None:
    app = world.launch(STANDALONE)
    first = app.token("doc", patient=world.alice)
    other = httpx.post(
        world.token_url,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(world.confidential_id, world.confidential_secret),
        timeout=10,
    )
    assert other.status_code == 400


def test_pkce_pair_helper_is_s256() -> None:
    verifier, challenge = pkce()
    assert len(verifier) == 73 and pkce_challenge(verifier) == challenge
