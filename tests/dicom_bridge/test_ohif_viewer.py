"""OHIF end to end: the OHIF Viewer's own production build, served on another origin, signs a
person in with the facade's SMART authorization server (OpenID Connect, code + PKCE, a public
client), lists the stored studies through QIDO-RS and opens one through WADO-RS, all with the
access token it was given, in headless Chromium. A patient who signs in sees their own study and
no other."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facade.wiring import Services
from tests.archive import patient_id_of, store
from tests.conftest import listening_socket, serving
from tests.dicom_factory import new_uid
from tests.ohif import app_config, ohif_dist, viewer_site
from tests.smart import PASSWORD
from tests.smart_auth.test_browser import ARTIFACTS, FLAGS, chromium
from tests.tools import missing

Seen = list[tuple[int, str]]  # the facade's answers to the viewer: status, path and query


def ct_study(services: Services, tmp_path: Path, patient_id: str, name: str, description: str) -> str:
    """Three 128x128 CT slices whose pixels are a ramp (`make_instance`), windowed over the whole
    range; the Study Instance UID."""
    study, series = new_uid(), new_uid()
    for n in range(1, 4):
        store(
            services,
            tmp_path,
            study_uid=study,
            series_uid=series,
            modality="CT",
            rows=128,
            columns=128,
            instance_number=n,
            patient_id=patient_id,
            patient_name=name,
            StudyDescription=description,
            ImagePositionPatient=[0.0, 0.0, float(n * 5)],
            ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            PixelSpacing=[0.7, 0.7],
            SliceThickness=5.0,
            WindowCenter=2048,
            WindowWidth=4096,
        )
    return study


@contextmanager
def signed_in(services: Services, facade: str, username: str, scope: str) -> Iterator[tuple[Any, str, Seen]]:
    """OHIF served on its own origin, its client registered, and a page of headless Chromium
    that opened it and went through the facade's sign-in and consent as `username`: yields the
    page (on the study list), the viewer's origin and the facade's answers so far."""
    dist, executable = ohif_dist(), chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed")
        raise
    site = listening_socket()
    origin = f"http://127.0.0.1:{site.getsockname()[1]}"
    auth = services.auth.builtin
    assert auth is not None
    client = auth.registry.add_client(name="OHIF", kind="public", redirect_uris=[f"{origin}/callback"])
    config = app_config(facade=facade, client_id=client.client.client_id, scope=scope)
    seen: Seen = []
    with serving(viewer_site(dist, config), site), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("response", lambda r: _record(seen, facade, r.status, r.url))
            # not signed in: the viewer sends the person to the facade's sign-in and consent
            page.goto(f"{origin}/", wait_until="domcontentloaded")
            page.wait_for_url(f"{facade}/auth/login?**", timeout=60_000)
            page.fill("#username", username)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/auth/consent?**")
            page.click("button[value=allow]")
            # back in the viewer with a token: its study list is a QIDO-RS search
            page.wait_for_url(f"{origin}/**", timeout=60_000)
            page.locator("text=1-").first.wait_for(timeout=60_000)  # the list's "1-N of N"
            yield page, origin, seen
        finally:
            browser.close()
    assert [s for s in seen if s[0] >= 400] == [], seen
    assert any(path.startswith("/auth/token") for _, path in seen)  # a cross-origin POST (CORS)
    assert any(path.startswith("/dicomweb/studies?") for _, path in seen)


@pytest.mark.one_backend
def test_ohif_signs_in_finds_and_opens_a_study(services: Services, live_http: str, tmp_path: Path) -> None:
    study = ct_study(services, tmp_path, "PID-OHIF", "Viewer^Olivia", "Chest CT for the viewer")
    ct_study(services, tmp_path, "PID-OTHER", "Other^Oscar", "Head CT of another patient")
    auth = services.auth.builtin
    assert auth is not None
    auth.registry.add_user(username="rad", password=PASSWORD, practitioner_name="Rita Radiologist")
    scope = "openid fhirUser user/ImagingStudy.rs user/Patient.rs"
    with signed_in(services, live_http, "rad", scope) as (page, origin, seen):
        page.get_by_text("Chest CT for the viewer").wait_for(timeout=60_000)
        assert page.get_by_text("Viewer, Olivia").count() == 1
        assert page.get_by_text("Other, Oscar").count() == 1
        page.get_by_text("Chest CT for the viewer").click()
        page.get_by_text("Basic Viewer").click()
        page.wait_for_url(f"{origin}/viewer?StudyInstanceUIDs={study}*", timeout=60_000)
        canvas = page.locator("canvas.cornerstone-canvas").first
        canvas.wait_for(timeout=60_000)
        tour = page.get_by_text("Skip all")  # OHIF's first-visit tour dims the page
        for _ in range(600):  # bounded: up to 60 s for the frames and their drawing
            if tour.count():
                tour.first.click()
            if _frames(seen) and _drawn(canvas.screenshot()):
                break
            page.wait_for_timeout(100)
        _shot(page, "ohif-viewer")
        assert _drawn(canvas.screenshot()), "the viewer drew no image (test-artifacts/ohif-viewer.png)"
    assert any(path.endswith("/metadata") for _, path in seen)
    assert _frames(seen)  # WADO-RS frames, with the bearer token OHIF was given


@pytest.mark.one_backend
def test_a_patient_in_ohif_sees_their_own_study_only(
    services: Services, live_http: str, tmp_path: Path
) -> None:
    own = ct_study(services, tmp_path, "PID-OHIF", "Viewer^Olivia", "Chest CT for the viewer")
    ct_study(services, tmp_path, "PID-OTHER", "Other^Oscar", "Head CT of another patient")
    auth = services.auth.builtin
    assert auth is not None
    auth.registry.add_user(username="olivia", password=PASSWORD, patient_id=patient_id_of(services, own))
    scope = "openid fhirUser launch/patient patient/ImagingStudy.rs patient/Patient.rs"
    with signed_in(services, live_http, "olivia", scope) as (page, _origin, seen):
        page.get_by_text("Chest CT for the viewer").wait_for(timeout=60_000)
        assert page.get_by_text("1-1 of 1").count() == 1
        assert page.get_by_text("Head CT of another patient").count() == 0
        _shot(page, "ohif-patient-study-list")
    assert any(path.startswith("/dicomweb/studies?") for _, path in seen)


def _record(seen: Seen, facade: str, status: int, url: str) -> None:
    if url.startswith(facade):
        seen.append((status, url[len(facade) :]))


def _frames(seen: Seen) -> list[str]:
    return [path for status, path in seen if status == 200 and "/frames/" in path]


def _drawn(png: bytes) -> bool:
    """The ramp through a full-range window: dark and light bands, and many greys between (OHIF's
    first-visit tour may dim the page behind its tooltip, so no absolute levels)."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    low, high = np.percentile(grey, [5, 95])
    return bool(high - low > 50 and len(np.unique(grey)) > 50)


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    aside = ARTIFACTS / f".{name}-{os.getpid()}.png"  # renamed in place: another worker may write it too
    page.screenshot(path=str(aside), full_page=True)
    aside.replace(ARTIFACTS / f"{name}.png")
