"""What the administrator and the user manage: the `facade client|user|launch|keys` commands, the
grant manager page (management_endpoint), logout, expiry and housekeeping."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from facade.housekeeping import Housekeeper
from facade.settings import Settings
from storage.auth.models import AccessTokenRow, AuthCodeRow
from tests.cli import Done, run_cli, settings_env
from tests.conftest import Clock
from tests.smart import PASSWORD, bearer, form_fields, query_of
from tests.smart_auth.conftest import World


def facade(settings: Settings, *args: str, stdin: str | None = None) -> Done:
    """`facade ARGS…` in process (tests/cli.py): these tests are about what the commands do."""
    return run_cli(settings_env(settings), *args, stdin=stdin)


def test_user_add_then_sign_in_with_that_password(world: World, settings: Settings) -> None:
    done = facade(
        settings,
        "user",
        "add",
        "--username",
        "rad",
        "--practitioner",
        "Riley Rad",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert done.returncode == 0, done.stderr
    assert f"fhirUser {world.fhir}/Practitioner/" in done.stdout
    short = facade(
        settings, "user", "add", "--username", "x", "--practitioner", "X", "--password-stdin", stdin="short\n"
    )
    assert short.returncode == 2 and "12 characters" in short.stderr
    taken = facade(
        settings,
        "user",
        "add",
        "--username",
        "rad",
        "--patient",
        world.alice,
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert taken.returncode == 2
    app = world.launch("launch/patient patient/*.rs")
    login = app.follow(app.authorize())
    consent = app.follow(app.sign_in(login, "rad", "a long enough password"))
    assert "Signed in as rad" in consent.text


def test_client_add_prints_what_the_client_needs_once(settings: Settings, world: World) -> None:
    done = facade(
        settings,
        "client",
        "add",
        "--name",
        "Portal",
        "--kind",
        "confidential",
        "--redirect-uri",
        "https://portal.example/cb",
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["token_endpoint"] == world.token_url and lines["client_secret"]
    listed = facade(settings, "client", "list")
    assert lines["client_id"] in listed.stdout and lines["client_secret"] not in listed.stdout
    bad = facade(settings, "client", "add", "--name", "No keys", "--kind", "backend")
    assert bad.returncode == 2 and "public keys" in bad.stderr


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "uri",
    [
        "http://evil.example/cb",
        "http://localhost.evil.example/cb",
        "http://127.0.0.1@evil.example/cb",
        "http://10.0.0.1/cb",
        "http://[::2]/cb",
    ],
)
def test_client_add_refuses_a_plain_http_redirect_uri(settings: Settings, world: World, uri: str) -> None:
    done = facade(settings, "client", "add", "--name", "Plain", "--kind", "public", "--redirect-uri", uri)
    assert done.returncode == 2 and "https" in done.stderr and "loopback" in done.stderr
    launch = facade(
        settings,
        *("client", "add", "--name", "Plain", "--kind", "public"),
        *("--redirect-uri", "https://app.example/cb", "--launch-url", uri),
    )
    assert launch.returncode == 2
    assert "Plain" not in facade(settings, "client", "list").stdout


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "http://127.0.0.1:8765/cb",
        "http://127.8.9.10/cb",
        "http://[::1]:8765/cb",
        "http://localhost:8765/cb",
        "http://LOCALHOST/cb",
    ],
)
def test_client_add_takes_https_and_loopback_redirect_uris(world: World, uri: str) -> None:
    made = world.auth.registry.add_client(name="Native", kind="public", redirect_uris=[uri])
    assert made.client.redirect_uris == (uri,)


def test_launch_create_and_key_rotation(world: World, settings: Settings) -> None:
    made = facade(settings, "launch", "create", "--client", world.public_id, "--patient", world.bob)
    assert made.returncode == 0, made.stderr
    launch = query_of(made.stdout.strip())
    assert launch["iss"] == world.fhir
    app = world.launch("launch patient/*.rs")
    assert "Sign in" in app.follow(app.authorize(launch=launch["launch"])).text
    before = httpx.get(f"{world.base}/auth/jwks", timeout=10).json()["keys"]
    rotated = facade(settings, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    world.auth.keys.reload()  # the running server would reread the files within a minute
    after = httpx.get(f"{world.base}/auth/jwks", timeout=10).json()["keys"]
    assert len(after) == len(before) + 1 and after[1]["kid"] == before[0]["kid"]


def test_token_create_for_curl(world: World, settings: Settings) -> None:
    made = facade(settings, "token", "create", "--scope", "patient/*.rs", "--patient", world.alice)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    seen = httpx.get(f"{world.fhir}/ImagingStudy", headers=bearer(token), timeout=10).json()
    assert [e["resource"]["id"] for e in seen["entry"]] == [world.study_a]
    assert facade(settings, "token", "create", "--scope", "patient/*.rs").returncode == 2
    assert facade(settings, "token", "create", "--scope", "openid").returncode == 2


@pytest.mark.one_backend
@pytest.mark.parametrize("seconds", ["3", "59", "3601", "99999"])
def test_token_create_refuses_a_lifetime_out_of_range(settings: Settings, seconds: str) -> None:
    made = facade(settings, "token", "create", "--scope", "system/*.rs", "--seconds", seconds)
    assert made.returncode == 2 and not made.stdout
    assert "--seconds must be from 60 to 3600" in made.stderr


def test_token_create_keeps_the_lifetime_asked(world: World, settings: Settings) -> None:
    made = facade(settings, "token", "create", "--scope", "system/*.rs", "--seconds", "60")
    assert made.returncode == 0, made.stderr
    with world.services.db.read() as s:
        row = s.scalars(select(AccessTokenRow).where(AccessTokenRow.client_id == "facade-cli")).one()
        assert (row.expires_at - row.issued_at).total_seconds() == 60


def test_an_unused_launch_expires(world: World, clock: Clock) -> None:
    r = httpx.post(
        f"{world.base}/auth/launch",
        data={"patient": world.bob},
        auth=(world.ehr_id, world.ehr_secret),
        timeout=10,
    )
    clock.advance(301)
    app = world.launch("launch patient/*.rs")
    assert (
        query_of(app.authorize(launch=r.json()["launch"]).headers["location"])["error"] == "invalid_request"
    )


def test_the_user_revokes_an_app_on_the_manage_page_and_signs_out(world: World) -> None:
    app = world.launch("launch/patient patient/*.rs offline_access")
    token = app.token("doc", patient=world.alice)["access_token"]
    manage = app.browser.get(f"{world.base}/auth/manage")
    assert manage.status_code == 200 and "Viewer" in manage.text and "patient/*.rs" in manage.text
    revoked = app.browser.post(f"{world.base}/auth/manage", data=form_fields(manage.text))
    assert revoked.status_code == 303
    assert (
        httpx.get(f"{world.fhir}/Patient/{world.alice}", headers=bearer(token), timeout=10).status_code == 401
    )
    assert "No application has access" in app.browser.get(f"{world.base}/auth/manage").text
    out = app.browser.get(f"{world.base}/auth/logout")
    app.browser.post(f"{world.base}/auth/logout", data=form_fields(out.text))
    after = app.browser.get(f"{world.base}/auth/manage")
    assert after.status_code == 303 and after.headers["location"].endswith("/auth/login")


@pytest.mark.one_backend
def test_no_password_grant_and_no_form_no_token(world: World) -> None:
    r = httpx.post(
        world.token_url,
        data={
            "grant_type": "password",
            "username": "doc",
            "password": PASSWORD,
            "client_id": world.public_id,
        },
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = httpx.post(world.token_url, json={"grant_type": "client_credentials"}, timeout=10)
    assert r.status_code == 400 and "no-store" in r.headers["cache-control"]


def test_housekeeping_removes_what_expired(world: World, clock: Clock) -> None:
    app = world.launch("launch/patient patient/*.rs")
    app.token("doc", patient=world.alice)
    clock.advance(2 * 86400)
    removed = Housekeeper([world.auth.tokens.purge_expired, world.auth.sessions.purge_expired]).run_once()
    assert removed >= 3  # the code, the access token, the browser session, the request
    with world.services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(AccessTokenRow)) == 0
        assert s.scalar(select(func.count()).select_from(AuthCodeRow)) == 0
