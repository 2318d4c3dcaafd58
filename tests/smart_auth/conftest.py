"""A SMART world on a live server: two patients with one study each, a practitioner and a patient
user, and one client of every kind (registered through the same Registry `facade client add`
uses)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from facade.wiring import BuiltinAuth, Services
from tests.archive import patient_id_of, store
from tests.conftest import serving
from tests.dicom_factory import new_uid
from tests.smart import PASSWORD, Launch, ec_key, public_jwks, rsa_key

APP_REDIRECT = "http://127.0.0.1:9/app/callback"
APP_LAUNCH = "http://127.0.0.1:9/app/launch"


@dataclass
class World:
    base: str
    services: Services
    study_a: str  # Alice's MR study
    study_b: str  # Bob's CT study
    alice: str  # Patient ids
    bob: str
    public_id: str
    confidential_id: str
    confidential_secret: str
    asymmetric_id: str
    asymmetric_key: RSAKey
    backend_id: str
    backend_key: ECKey
    ehr_id: str
    ehr_secret: str

    @property
    def auth(self) -> BuiltinAuth:
        assert self.services.auth.builtin is not None
        return self.services.auth.builtin

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.base}/auth/token"

    def launch(self, scope: str, *, client_id: str | None = None) -> Launch:
        return Launch(self.base, client_id or self.public_id, APP_REDIRECT, scope)


@cache
def client_keys() -> tuple[RSAKey, ECKey]:
    """The asymmetric and backend clients' keys, made once per run (RSA generation is slow)."""
    return rsa_key("app-rsa"), ec_key("svc-ec")


@pytest.fixture
def jwks_host() -> Iterator[dict[str, Any]]:
    """A JWKS published on 127.0.0.1 (an app's web server, an identity provider); counts fetches."""
    state: dict[str, Any] = {"jwks": {"keys": []}, "fetches": 0}

    async def serve(_request: Any) -> JSONResponse:
        state["fetches"] += 1
        return JSONResponse(state["jwks"], headers={"Cache-Control": "max-age=600"})

    with serving(Starlette(routes=[Route("/jwks.json", serve)])) as url:
        state["url"] = f"{url}/jwks.json"
        yield state


@pytest.fixture
def world(services: Services, live_http: str, tmp_path: Path) -> World:
    study_a, study_b, series_a = new_uid(), new_uid(), new_uid()
    for n in (1, 2):
        store(
            services,
            tmp_path,
            study_uid=study_a,
            series_uid=series_a,
            instance_number=n,
            patient_id="PID-ALICE",
            patient_name="Probe^Alice",
        )
    store(
        services,
        tmp_path,
        study_uid=study_b,
        series_uid=new_uid(),
        modality="CT",
        patient_id="PID-BOB",
        patient_name="Probe^Bob",
    )
    alice, bob = patient_id_of(services, study_a), patient_id_of(services, study_b)
    auth = services.auth.builtin
    assert auth is not None
    reg = auth.registry
    reg.add_user(username="doc", password=PASSWORD, practitioner_name="Dana Doctor")
    reg.add_user(username="alice", password=PASSWORD, patient_id=alice)
    public = reg.add_client(name="Viewer", kind="public", redirect_uris=[APP_REDIRECT], launch_url=APP_LAUNCH)
    confidential = reg.add_client(name="Portal", kind="confidential", redirect_uris=[APP_REDIRECT])
    rkey, ekey = client_keys()
    asymmetric = reg.add_client(
        name="Reporting", kind="asymmetric", redirect_uris=[APP_REDIRECT], jwks=public_jwks(rkey)
    )
    backend = reg.add_client(
        name="Analytics",
        kind="backend",
        jwks=public_jwks(ekey),
        scope="system/*.rs system/ImagingStudy.c",
        can_introspect=True,
    )
    ehr = reg.add_client(name="EHR", kind="confidential", redirect_uris=[APP_REDIRECT], can_launch=True)
    assert confidential.secret and ehr.secret
    return World(
        live_http,
        services,
        study_a,
        study_b,
        alice,
        bob,
        public.client.client_id,
        confidential.client.client_id,
        confidential.secret,
        asymmetric.client.client_id,
        rkey,
        backend.client.client_id,
        ekey,
        ehr.client.client_id,
        ehr.secret,
    )
