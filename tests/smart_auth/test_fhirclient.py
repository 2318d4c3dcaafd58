"""A whole standalone launch driven by the `fhirclient` package (SMART's Python client): it finds
the endpoints in /metadata, sends PKCE S256 and aud, exchanges the code, reads with the token,
and refreshes."""

from __future__ import annotations

from urllib.parse import urljoin

import httpx
from fhirclient import client
from fhirclient.models.imagingstudy import ImagingStudy

from tests.smart import Launch, form_fields
from tests.smart_auth.conftest import APP_REDIRECT, World

SCOPE = "launch/patient openid fhirUser offline_access patient/ImagingStudy.rs patient/Patient.rs"


def test_fhirclient_standalone_launch_read_search_and_refresh(world: World) -> None:
    smart = client.FHIRClient(
        settings={
            "app_id": world.public_id,
            "api_base": world.fhir,
            "redirect_uri": APP_REDIRECT,
            "scope": SCOPE,
        }
    )
    url = smart.authorize_url  # from the CapabilityStatement's oauth-uris
    assert url.startswith(f"{world.base}/auth/authorize?")
    browser = Launch(world.base, world.public_id, APP_REDIRECT, SCOPE)
    login = browser.follow(browser.browser.get(url))
    consent = browser.follow(browser.sign_in(login, "alice"))
    assert "Allow access?" in consent.text and form_fields(consent.text)["request"]
    done = browser.decide(consent)
    assert done.status_code == 303
    smart.handle_callback(urljoin(APP_REDIRECT, done.headers["location"]))
    assert smart.ready and smart.patient_id == world.alice
    study = ImagingStudy.read(world.study_a, smart.server)
    assert study.numberOfInstances == 2 and study.subject.reference == f"Patient/{world.alice}"
    found = ImagingStudy.where(struct={"patient": world.alice}).perform_resources(smart.server)
    assert [s.id for s in found] == [world.study_a]
    old = smart.server.auth.access_token
    assert smart.reauthorize() and smart.server.auth.access_token != old
    r = httpx.get(f"{world.fhir}/ImagingStudy", headers={"Authorization": f"Bearer {old}"}, timeout=10)
    assert r.status_code == 200  # the old access token lives out its hour; the refresh token rotated
