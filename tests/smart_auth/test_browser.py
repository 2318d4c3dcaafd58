"""The login and consent pages in a real browser (headless Chromium driven by Playwright): a person
signs in, searches and picks a patient, unticks a scope and allows; the app receives the code.
A screenshot of the consent page is kept in test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.smart import PASSWORD, pkce, query_of
from tests.smart_auth.conftest import APP_REDIRECT, World
from tests.tools import missing

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        missing("chromium not found (install Debian package chromium)")
    assert path is not None
    return path


@pytest.mark.one_backend
def test_sign_in_pick_a_patient_and_consent_in_chromium(world: World, tmp_path: Path) -> None:
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed")
        return
    verifier, challenge = pkce()
    scope = "launch/patient openid fhirUser patient/ImagingStudy.rs patient/Patient.rs"
    params = {
        "response_type": "code",
        "client_id": world.public_id,
        "redirect_uri": APP_REDIRECT,
        "scope": scope,
        "state": "browser-state",
        "aud": world.fhir,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    from urllib.parse import urlencode

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            page = browser.new_page()
            redirected: list[str] = []

            def app(route: object) -> None:  # the app's redirect URI: record it, answer a tiny page
                redirected.append(route.request.url)  # type: ignore[attr-defined]
                route.fulfill(status=200, body="app got the code", content_type="text/plain")  # type: ignore[attr-defined]

            page.route(f"{APP_REDIRECT}*", app)
            page.goto(f"{world.base}/auth/authorize?{urlencode(params)}")
            assert page.title() == "Sign in"
            page.fill("#username", "doc")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/auth/consent?**")
            page.fill("#q", "Probe")
            page.click("text=Search")
            page.wait_for_selector("input[name=patient]")
            page.check(f"input[name=patient][value='{world.bob}']")
            page.uncheck("input[name=scope][value='openid']")
            ARTIFACTS.mkdir(exist_ok=True)
            # written aside, then renamed in place: another xdist worker may be taking it too
            shot = ARTIFACTS / f".consent-{os.getpid()}.png"
            page.screenshot(path=str(shot), full_page=True)
            shot.replace(ARTIFACTS / "consent.png")
            page.click("button[value=allow]")
            page.wait_for_url(f"{APP_REDIRECT}*")
        finally:
            browser.close()
    assert len(redirected) == 1
    query = query_of(redirected[0])
    assert query["state"] == "browser-state" and urlsplit(redirected[0]).path == "/app/callback"
    import httpx

    token = httpx.post(
        world.token_url,
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
            "client_id": world.public_id,
        },
        timeout=10,
    ).json()
    assert (
        token["patient"] == world.bob and "openid" not in token["scope"].split() and "id_token" not in token
    )
    assert (ARTIFACTS / "consent.png").stat().st_size > 0


@pytest.mark.one_backend
def test_login_page_cannot_be_framed(world: World) -> None:
    import httpx

    r = httpx.get(f"{world.base}/auth/login", timeout=10)
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
