"""The resource server (checklist 37-43): 401 / 403 before any data, patient isolation by read,
search, include and guessed id, granular scopes, DICOMweb with the same tokens, every route
protected, every access audited. (G10 unauthorized_access, restricted_access, US Core
granular_scope_search / granular_scope_read.)"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Mount

from facade.http import build_http_app
from smart_auth.resource_server.guard import Guard
from smart_auth.server.tokens import CACHE_SECONDS, Tokens
from storage.audit.models import AuditEventRow
from storage.clock import utcnow
from tests.conftest import Clock
from tests.dicom_bridge.test_stow import VALID, content_type
from tests.fhir_schema import assert_valid_r4
from tests.smart import bearer, issue_token
from tests.smart_auth.conftest import World

CT = "http://dicom.nema.org/resources/ontology/DCM|CT"


def get(world: World, path: str, token: str | None, **params: str) -> httpx.Response:
    headers = bearer(token) if token else {}
    return httpx.get(f"{world.fhir}/{path}", params=params, headers=headers, timeout=10)


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode)


@pytest.mark.parametrize(
    ("header", "error"),
    [(None, False), ("Basic abc", True), ("Bearer", True), ("Bearer not-a-token", True)],
)
def test_g10_unauthorized_access_is_401_with_a_challenge(
    world: World, header: str | None, error: bool
) -> None:
    r = httpx.get(
        f"{world.fhir}/ImagingStudy", headers={"Authorization": header} if header else {}, timeout=10
    )
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{world.fhir}"')
    assert ('error="invalid_token"' in challenge) == error
    assert_valid_r4(r.json())


def test_an_expired_token_is_401(world: World, clock: Clock) -> None:
    token = issue_token(world.services, "system/*.rs")
    assert get(world, "ImagingStudy", token).status_code == 200
    clock.advance(3601)
    assert get(world, "ImagingStudy", token).status_code == 401


def test_scopes_decide_the_interaction_before_any_data(world: World) -> None:
    read_only = issue_token(world.services, "patient/Patient.r", patient=world.alice)
    r = get(world, "Patient", read_only)  # .r does not allow search
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert r.json()["issue"][0]["code"] == "forbidden"
    assert get(world, f"Patient/{world.alice}", read_only).status_code == 200
    assert get(world, f"ImagingStudy/{world.study_a}", read_only).status_code == 403  # another type
    search_only = issue_token(world.services, "patient/ImagingStudy.s", patient=world.alice)
    assert get(world, "ImagingStudy", search_only).status_code == 200
    assert get(world, f"ImagingStudy/{world.study_a}", search_only).status_code == 403
    # the same answer whether or not the resource exists: nothing was looked up
    assert get(world, "ImagingStudy/no-such-study", read_only).status_code == 403


def test_patient_isolation_by_read_search_include_history_and_guess(world: World) -> None:
    alice = issue_token(world.services, "patient/*.rs", patient=world.alice)
    assert ids(get(world, "ImagingStudy", alice).json()) == [world.study_a]
    assert ids(get(world, "Patient", alice).json()) == [world.alice]
    assert get(world, f"ImagingStudy/{world.study_a}", alice).status_code == 200
    for path in (
        f"ImagingStudy/{world.study_b}",
        f"ImagingStudy/{world.study_b}/_history",
        f"ImagingStudy/{world.study_b}/_history/1",
        f"Patient/{world.bob}",
        f"Patient/{world.bob}/_history",
    ):
        r = get(world, path, alice)
        assert r.status_code == 404, path  # exactly like an id that does not exist
        assert (
            get(world, path.replace(world.bob, "no-such-id").replace(world.study_b, "1.2.3"), alice).json()[
                "issue"
            ][0]["code"]
            == r.json()["issue"][0]["code"]
        )
    assert get(world, "ImagingStudy", alice, patient=world.bob).json()["total"] == 0
    assert get(world, "ImagingStudy", alice, subject=f"Patient/{world.bob}").json()["total"] == 0
    assert (
        get(world, "ImagingStudy", alice, identifier=f"urn:dicom:uid|urn:oid:{world.study_b}").json()["total"]
        == 0
    )
    assert get(world, "ImagingStudy", alice, _id=world.study_b).json()["total"] == 0
    assert get(world, "ImagingStudy", alice, _summary="count").json()["total"] == 1
    assert get(world, "Patient", alice, name="Probe").json()["total"] == 1
    included = get(world, "ImagingStudy", alice, _include="ImagingStudy:patient").json()
    assert ids(included) == [world.study_a] and ids(included, "include") == [world.alice]
    posted = httpx.post(
        f"{world.fhir}/ImagingStudy/_search", data={"modality": "CT"}, headers=bearer(alice), timeout=10
    )
    assert posted.status_code == 200 and posted.json()["total"] == 0
    endpoint = get(world, "Endpoint", alice).json()  # outside the compartment: not patient data
    assert endpoint["total"] == 1


def test_include_returns_only_resources_some_scope_allows(world: World) -> None:
    studies_only = issue_token(world.services, "patient/ImagingStudy.rs", patient=world.alice)
    included = get(world, "ImagingStudy", studies_only, _include="ImagingStudy:patient").json()
    assert ids(included) == [world.study_a] and ids(included, "include") == []


def test_a_patient_users_user_scopes_stay_in_their_compartment(world: World) -> None:
    token = issue_token(world.services, "user/*.rs", fhir_user=f"Patient/{world.alice}")
    assert ids(get(world, "ImagingStudy", token).json()) == [world.study_a]
    assert get(world, f"Patient/{world.bob}", token).status_code == 404
    practitioner = issue_token(world.services, "user/*.rs", fhir_user="Practitioner/x")
    assert get(world, "ImagingStudy", practitioner).json()["total"] == 2


def test_uc_granular_scope_search_and_read(world: World) -> None:
    token = issue_token(world.services, f"user/ImagingStudy.rs?modality={CT}", fhir_user="Practitioner/x")
    assert ids(get(world, "ImagingStudy", token).json()) == [world.study_b]  # all and only the CT studies
    assert get(world, "ImagingStudy", token, modality="MR").json()["total"] == 0
    assert get(world, f"ImagingStudy/{world.study_b}", token).status_code == 200
    assert get(world, f"ImagingStudy/{world.study_a}", token).status_code == 404
    both = issue_token(
        world.services,
        f"user/ImagingStudy.rs?modality={CT} user/ImagingStudy.rs?modality=http://dicom.nema.org/resources/ontology/DCM|MR",
        fhir_user="Practitioner/x",
    )
    assert get(world, "ImagingStudy", both).json()["total"] == 2  # alternatives are ORed
    patient_ct = issue_token(world.services, f"patient/ImagingStudy.rs?modality={CT}", patient=world.alice)
    assert get(world, "ImagingStudy", patient_ct).json()["total"] == 0  # Alice has no CT


def test_dicomweb_takes_the_same_tokens(world: World) -> None:
    url = f"{world.base}/dicomweb/studies"
    r = httpx.post(url, content=VALID, headers=content_type(), timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer realm=")
    reader = issue_token(world.services, "user/ImagingStudy.rs", fhir_user="Practitioner/x")
    r = httpx.post(url, content=VALID, headers={**content_type(), **bearer(reader)}, timeout=30)
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]
    patient_writer = issue_token(world.services, "patient/ImagingStudy.cruds", patient=world.alice)
    r = httpx.post(url, content=VALID, headers={**content_type(), **bearer(patient_writer)}, timeout=30)
    assert r.status_code == 403
    writer = issue_token(world.services, "system/ImagingStudy.c")
    r = httpx.post(url, content=VALID, headers={**content_type(), **bearer(writer)}, timeout=30)
    assert r.status_code == 200


def test_every_fhir_dicomweb_and_wado_route_depends_on_the_guard(world: World) -> None:
    """A route added without the guard fails here."""
    open_paths = {"/fhir/metadata", "/fhir/.well-known/{name}"}
    app = build_http_app(world.services)
    checked = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(list(route.routes), prefix + route.path)
            elif hasattr(route, "original_router"):  # FastAPI keeps an included router as such
                walk(
                    list(route.original_router.routes), prefix + getattr(route.include_context, "prefix", "")
                )
            elif isinstance(route, APIRoute):
                path = prefix + route.path
                if not path.startswith(("/fhir", "/dicomweb", "/wado")) or path in open_paths:
                    continue
                checked.append(path)
                assert guarded(route.dependant), f"{path} is not protected"

    def guarded(dependant: Any) -> bool:
        return any(isinstance(d.call, Guard) or guarded(d) for d in dependant.dependencies)

    walk(list(app.routes), "")
    assert "/fhir/{res_type}/{res_id}" in checked and "/dicomweb/studies" in checked
    assert "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata" in checked
    assert "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered" in checked
    assert "/wado/" in checked


def test_wado_sees_what_a_fhir_read_of_the_imaging_study_sees(world: World) -> None:
    """The same Access.visibility: granular scopes and compartments decide WADO-RS too."""
    for scope, patient, seen in (
        ("system/ImagingStudy.rs", None, {world.study_a, world.study_b}),
        (f"system/ImagingStudy.rs?modality={CT}", None, {world.study_b}),
        ("patient/ImagingStudy.rs", world.alice, {world.study_a}),
        (f"patient/ImagingStudy.rs?modality={CT}", world.alice, set()),
    ):
        token = issue_token(world.services, scope, patient=patient)
        for study in (world.study_a, world.study_b):
            fhir = get(world, f"ImagingStudy/{study}", token).status_code
            wado = httpx.get(f"{world.base}/dicomweb/studies/{study}", headers=bearer(token), timeout=30)
            assert fhir == wado.status_code == (200 if study in seen else 404), (scope, study)


def test_every_access_is_audited_without_query_strings(world: World) -> None:
    alice = issue_token(world.services, "patient/*.rs", patient=world.alice, client_id="viewer-app")
    get(world, f"ImagingStudy/{world.study_a}", alice)
    get(world, f"ImagingStudy/{world.study_b}", alice)
    get(world, "Patient", alice, name="Probe")
    get(world, "ImagingStudy", None)
    world.services.audit.flush()
    with world.services.db.read() as s:
        rows = [
            (r.action, r.path, r.status, r.outcome, r.client_id, r.patient)
            for r in s.scalars(select(AuditEventRow).order_by(AuditEventRow.id))
        ]
    assert rows == [
        ("read", f"/fhir/ImagingStudy/{world.study_a}", 200, "allowed", "viewer-app", world.alice),
        ("read", f"/fhir/ImagingStudy/{world.study_b}", 404, "refused", "viewer-app", world.alice),
        ("search", "/fhir/Patient", 200, "allowed", "viewer-app", world.alice),
        ("search", "/fhir/ImagingStudy", 401, "refused", None, None),
    ]


def _granted(world: World, scope: str) -> tuple[str, str]:
    """(grant id, access token) straight from the token store."""
    auth = world.services.auth.builtin
    assert auth is not None
    grant = auth.tokens.new_grant(client_id="tests", user_id=None, scope=scope, context={})
    issued = auth.tokens.issue(
        grant, scope=scope, lifetime=3600, fhir_user=None, patient=None, refresh_lifetime=None
    )
    return grant.id, issued.access_token


def test_a_remembered_token_is_refused_as_soon_as_this_server_revokes_it(world: World) -> None:
    """The guard answers a token checked moments ago on the event loop (`remembered`); a
    revocation through this process forgets it at once, on /dicomweb, /wado and /fhir alike."""
    auth = world.services.auth.builtin
    assert auth is not None
    grant, token = _granted(world, "system/*.rs")
    studies = f"{world.base}/dicomweb/studies"
    assert auth.tokens.remembered(token) is None  # never checked
    assert httpx.get(studies, headers=bearer(token), timeout=10).status_code == 200
    assert auth.tokens.remembered(token) is not None
    assert httpx.get(studies, headers=bearer(token), timeout=10).status_code == 200
    auth.tokens.revoke_grant(grant)
    assert auth.tokens.remembered(token) is None
    for url in (studies, f"{world.base}/dicomweb/studies/{world.study_a}", f"{world.fhir}/ImagingStudy"):
        r = httpx.get(url, headers=bearer(token), timeout=10)
        assert r.status_code == 401, url
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_a_revocation_by_another_process_is_seen_within_the_cache_period(world: World) -> None:
    """Another serving process on the same database revokes (its own token store): this one may
    answer from what it remembers for at most CACHE_SECONDS, then refuses."""
    grant, token = _granted(world, "system/*.rs")
    studies = f"{world.base}/dicomweb/studies"
    assert httpx.get(studies, headers=bearer(token), timeout=10).status_code == 200
    Tokens(world.services.db, now=utcnow).revoke_grant(grant)
    time.sleep(CACHE_SECONDS + 0.2)
    assert httpx.get(studies, headers=bearer(token), timeout=10).status_code == 401


def test_a_remembered_patient_token_still_sees_its_own_patient_only(world: World) -> None:
    token = issue_token(world.services, "patient/ImagingStudy.rs", patient=world.alice)
    for _ in range(3):  # the first check reads the database, the next ones are remembered
        r = httpx.get(f"{world.base}/dicomweb/studies", headers=bearer(token), timeout=10)
        assert r.status_code == 200
        assert [s["0020000D"]["Value"][0] for s in r.json()] == [world.study_a]
        r = httpx.get(
            f"{world.base}/dicomweb/studies/{world.study_b}/metadata", headers=bearer(token), timeout=10
        )
        assert r.status_code == 404
