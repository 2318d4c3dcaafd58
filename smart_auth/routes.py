"""The authorization server's HTTP face, mounted at /auth.

    GET|POST /authorize      SMART step 3 (authorize-post too)
    GET|POST /login          sign in (username + password), then on to consent
    GET|POST /consent        approve / deny, untick scopes, pick a patient
    GET|POST /logout         end the browser session
    GET|POST /manage         the signed-in user's grants, each revocable (management_endpoint)
    POST     /token          authorization_code, refresh_token, client_credentials
    POST     /introspect     RFC 7662
    POST     /revoke         RFC 7009
    POST     /launch         an EHR (a client registered with can_launch) creates a launch
    GET      /jwks           our public signing keys
    GET      /smart-style.json

Forms are application/x-www-form-urlencoded; anything else is refused. Pages carry
anti-framing headers; the browser session cookie is HttpOnly, SameSite=Lax, Secure on https.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from urllib.parse import urlencode

from authlib.oauth2.base import OAuth2Error
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from smart_auth.audit_note import note
from smart_auth.authorize import Authorization, Held, Redirect, Refuse
from smart_auth.config import AuthConfig
from smart_auth.launches import create_launch
from smart_auth.pages import (
    SMART_STYLE,
    GrantLine,
    consent_page,
    error_page,
    login_page,
    logout_page,
    manage_page,
)
from smart_auth.registry import User
from smart_auth.server import FormRequest, SmartServer
from smart_auth.sessions import LoginSession, PendingRequest, Sessions
from storage.errors import Invalid
from storage.usecases.search import Search

SESSION_COOKIE = "facade_session"
LOGIN_COOKIE = "facade_login"
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def create_auth_app(  # noqa: PLR0915  (one closure per endpoint)
    *,
    config: AuthConfig,
    server: SmartServer,
    authorization: Authorization,
    sessions: Sessions,
    search: Search,
) -> FastAPI:
    app = FastAPI(title="SMART authorization server", openapi_url=None, docs_url=None, redoc_url=None)
    registry, tokens = server.registry, server.tokens

    def cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/auth",
            httponly=True,
            samesite="lax",
            secure=config.secure_cookies,
        )

    def see_other(url: str) -> Response:
        return RedirectResponse(url, status_code=303, headers=NO_STORE)

    def current(request: Request) -> LoginSession | None:
        return sessions.current(request.cookies.get(SESSION_COOKIE))

    # --- authorize ------------------------------------------------------------------------------

    @app.api_route("/authorize", methods=["GET", "POST"])
    async def authorize(request: Request) -> Response:
        if request.method == "POST":
            pairs = await _form(request)
            if pairs is None:
                return error_page("send the authorization request as a form", status=415)
            req = FormRequest("POST", config.auth_base + "/authorize", request.headers, form=pairs)
        else:
            req = FormRequest(
                "GET",
                config.auth_base + "/authorize",
                request.headers,
                args=list(request.query_params.multi_items()),
            )
        outcome = await run_in_threadpool(authorization.begin, req)
        if isinstance(outcome, Redirect):
            return see_other(outcome.url)
        if isinstance(outcome, Refuse):
            return error_page(outcome.message, status=outcome.status)
        assert isinstance(outcome, Held)
        note(request.scope, client_id=outcome.request.client_id)
        step = "consent" if await run_in_threadpool(current, request) else "login"
        return see_other(f"{config.auth_base}/{step}?{urlencode({'request': outcome.request.id})}")

    # --- login ----------------------------------------------------------------------------------

    @app.get("/login")
    def login_form(request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        pending = sessions.pending(request_id) if request_id else None
        if request_id and pending is None:
            return error_page("This sign-in link has expired. Start again from the application.")
        client = registry.client(pending.client_id) if pending else None
        csrf = secrets.token_urlsafe(24)
        response = login_page(request_id=request_id, csrf=csrf, client_name=client.name if client else "You")
        cookie(response, LOGIN_COOKIE, csrf, config.request_seconds)
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        pairs = await _form(request)
        if pairs is None:
            return error_page("send the sign-in form as a form", status=415)
        form = dict(pairs)
        request_id = form.get("request", "")
        expected = request.cookies.get(LOGIN_COOKIE)
        if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
            return error_page("The sign-in form has expired. Please go back and try again.", status=403)
        pending = await run_in_threadpool(sessions.pending, request_id) if request_id else None
        if request_id and pending is None:
            return error_page("This sign-in link has expired. Start again from the application.")
        user = await run_in_threadpool(registry.login, form.get("username", ""), form.get("password", ""))
        if user is None:
            client = registry.client(pending.client_id) if pending else None
            csrf = secrets.token_urlsafe(24)
            response = login_page(
                request_id=request_id,
                csrf=csrf,
                client_name=client.name if client else "You",
                error="The username or password is not right.",
            )
            cookie(response, LOGIN_COOKIE, csrf, config.request_seconds)
            return response
        value, _ = await run_in_threadpool(sessions.login, user.id, config.session_seconds)
        note(request.scope, user=user.fhir_user)
        target = f"consent?{urlencode({'request': request_id})}" if request_id else "manage"
        response = see_other(f"{config.auth_base}/{target}")
        cookie(response, SESSION_COOKIE, value, config.session_seconds)
        response.delete_cookie(LOGIN_COOKIE, path="/auth")
        return response

    # --- consent --------------------------------------------------------------------------------

    @app.get("/consent")
    def consent_form(request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        pending = sessions.pending(request_id)
        if pending is None:
            return error_page("This request has expired. Start again from the application.")
        session = current(request)
        user = registry.user(session.user_id) if session else None
        if session is None or user is None:
            return see_other(f"{config.auth_base}/login?{urlencode({'request': request_id})}")
        return show_consent(pending, session, user, query=request.query_params.get("q", "")[:100])

    def show_consent(
        pending: PendingRequest,
        session: LoginSession,
        user: User,
        *,
        query: str = "",
        error: str | None = None,
    ) -> Response:
        view = authorization.view(pending, user, query)
        if isinstance(view, Refuse):
            return error_page(view.message, status=view.status)
        return consent_page(
            request_id=pending.id,
            csrf=session.csrf,
            client_name=view.client.name,
            username=user.username,
            scopes=view.scopes,
            patient_label=view.patient_label,
            pick_patient=view.pick_patient,
            choices=view.choices,
            query=query,
            error=error,
        )

    @app.post("/consent")
    async def consent(request: Request) -> Response:
        pairs = await _form(request)
        if pairs is None:
            return error_page("send the consent form as a form", status=415)
        form = dict(pairs)
        return await run_in_threadpool(_decide, request, form, [v for k, v in pairs if k == "scope"])

    def _decide(request: Request, form: dict[str, str], selected: list[str]) -> Response:
        session = current(request)
        if session is None or not secrets.compare_digest(session.csrf, form.get("csrf", "")):
            return error_page("The consent form has expired. Please start again.", status=403)
        user = registry.user(session.user_id)
        pending = sessions.pending(form.get("request", ""))
        if user is None or pending is None:
            return error_page("This request has expired. Start again from the application.")
        note(request.scope, user=user.fhir_user, client_id=pending.client_id)
        outcome = authorization.decide(
            pending,
            user,
            allow=form.get("decision") == "allow",
            selected=selected,
            picked_patient=form.get("patient"),
        )
        if isinstance(outcome, Redirect):
            return see_other(outcome.url)
        if isinstance(outcome, Refuse):
            return error_page(outcome.message, status=outcome.status)
        return show_consent(pending, session, user, error=outcome)

    # --- logout and manage ----------------------------------------------------------------------

    @app.get("/logout")
    def logout_form(request: Request) -> Response:
        session = current(request)
        return logout_page(csrf=session.csrf if session else None)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = dict(await _form(request) or [])
        session = await run_in_threadpool(current, request)
        if session is not None and secrets.compare_digest(session.csrf, form.get("csrf", "")):
            await run_in_threadpool(sessions.logout, request.cookies.get(SESSION_COOKIE))
        response = logout_page(csrf=None, done=True)
        response.delete_cookie(SESSION_COOKIE, path="/auth")
        return response

    @app.get("/manage")
    def manage_form(request: Request) -> Response:
        session = current(request)
        user = registry.user(session.user_id) if session else None
        if session is None or user is None:
            return see_other(f"{config.auth_base}/login")
        lines = []
        for grant, created in tokens.grants_of(user.id):
            client = registry.client(grant.client_id)
            lines.append(
                GrantLine(
                    grant.id,
                    client.name if client else grant.client_id,
                    grant.scope,
                    created.date().isoformat(),
                )
            )
        return manage_page(csrf=session.csrf, username=user.username, grants=lines)

    @app.post("/manage")
    async def manage(request: Request) -> Response:
        form = dict(await _form(request) or [])
        session = await run_in_threadpool(current, request)
        if session is None or not secrets.compare_digest(session.csrf, form.get("csrf", "")):
            return error_page("The form has expired. Please sign in again.", status=403)
        grant = await run_in_threadpool(tokens.grant, form.get("grant", ""))
        if grant is not None and grant.user_id == session.user_id:
            await run_in_threadpool(tokens.revoke_grant, grant.id)
        return see_other(f"{config.auth_base}/manage")

    # --- token, introspection, revocation -------------------------------------------------------

    async def _machine(request: Request, handle: Callable[[FormRequest], Response]) -> Response:
        pairs = await _form(request)
        if pairs is None:
            return _json_error(400, "invalid_request", f"send {FORM}")
        req = FormRequest("POST", config.token_url, request.headers, form=pairs)
        response = await run_in_threadpool(handle, req)
        response.headers.update(NO_STORE)
        response.headers.setdefault("Content-Type", "application/json")
        return response

    @app.post("/token")
    async def token(request: Request) -> Response:
        response = await _machine(request, server.create_token_response)
        if response.status_code == 200:
            body = json.loads(bytes(response.body))
            note(request.scope, action="token", detail=f"granted {body.get('scope', '')}"[:200])
        return response

    @app.post("/introspect")
    async def introspect(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            pairs = dict(await _form(request) or [])
            if "token" not in pairs:
                return _json_error(400, "invalid_request", "token is required")
            try:
                body = await run_in_threadpool(
                    server.introspect_with_bearer,
                    header[7:].strip(),
                    pairs["token"],
                    pairs.get("token_type_hint"),
                )
            except OAuth2Error as error:
                return server.handle_response(*error())
            return Response(json.dumps(body), media_type="application/json", headers=NO_STORE)
        return await _machine(request, lambda req: server.create_endpoint_response("introspection", req))

    @app.post("/revoke")
    async def revoke(request: Request) -> Response:
        return await _machine(request, lambda req: server.create_endpoint_response("revocation", req))

    # --- EHR launch -----------------------------------------------------------------------------

    @app.post("/launch")
    async def launch(request: Request) -> Response:
        """The EHR, authenticated as a client registered with can_launch, hands over the context
        (SMART "EHR Launch": patient, encounter, fhirUser, intent, need_patient_banner,
        smart_style_url) and the app's client_id; it gets the opaque launch id, the `iss` and,
        when the app registered one, the URL to open."""
        pairs = await _form(request)
        if pairs is None:
            return _json_error(400, "invalid_request", f"send {FORM}")
        req = FormRequest("POST", f"{config.auth_base}/launch", request.headers, form=pairs)
        try:
            ehr = await run_in_threadpool(
                server.authenticate_client, req, ["client_secret_basic", "private_key_jwt"], "launch"
            )
        except OAuth2Error as error:
            return server.handle_response(*error())
        if not ehr.can_launch:
            return _json_error(403, "unauthorized_client", "this client may not create launches")
        note(request.scope, client_id=ehr.client_id)
        form = dict(pairs)
        try:
            created = await run_in_threadpool(
                create_launch,
                sessions=sessions,
                registry=server.registry,
                search=search,
                config=config,
                form=form,
            )
        except Invalid as exc:
            return _json_error(400, "invalid_request", str(exc))
        return Response(json.dumps(created), status_code=201, media_type="application/json", headers=NO_STORE)

    # --- static documents -----------------------------------------------------------------------

    @app.get("/jwks")
    def jwks() -> Response:
        return Response(
            json.dumps(server.keys.jwks()),
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @app.get("/smart-style.json")
    def smart_style() -> Response:
        return Response(json.dumps(SMART_STYLE), media_type="application/json")

    return app


async def _form(request: Request) -> list[tuple[str, str]] | None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM:
        return None
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def _json_error(status: int, error: str, description: str) -> Response:
    return Response(
        json.dumps({"error": error, "error_description": description}),
        status_code=status,
        media_type="application/json",
        headers=NO_STORE,
    )
