"""GET|POST /auth/login: sign in with username and password (the form carries a CSRF value that
must match its cookie), then on to consent, or to the grants page when no request waits."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from smart_auth.audit_note import note
from smart_auth.server.pages import error_page, login_page
from smart_auth.server.routes.context import SESSION_COOKIE, AuthContext, Context
from smart_auth.server.routes.http import read_form, see_other, set_cookie
from smart_auth.server.sessions import PendingRequest

LOGIN_COOKIE = "facade_login"
EXPIRED_LINK = "This sign-in link has expired. Start again from the application."

router = APIRouter()


@router.get("/login")
def login_form(request: Request, ctx: Context) -> Response:
    request_id = request.query_params.get("request", "")
    pending = ctx.sessions.pending(request_id) if request_id else None
    if request_id and pending is None:
        return error_page(EXPIRED_LINK)
    return _form_page(ctx, request_id, pending)


@router.post("/login")
async def login(request: Request, ctx: Context) -> Response:
    pairs = await read_form(request)
    if pairs is None:
        return error_page("send the sign-in form as a form", status=415)
    form = dict(pairs)
    request_id = form.get("request", "")
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
        return error_page("The sign-in form has expired. Please go back and try again.", status=403)
    pending = await run_in_threadpool(ctx.sessions.pending, request_id) if request_id else None
    if request_id and pending is None:
        return error_page(EXPIRED_LINK)
    user = await run_in_threadpool(ctx.registry.login, form.get("username", ""), form.get("password", ""))
    if user is None:
        return _form_page(ctx, request_id, pending, error="The username or password is not right.")
    value, _ = await run_in_threadpool(ctx.sessions.login, user.id, ctx.config.session_seconds)
    note(request.scope, user=user.fhir_user)
    target = f"consent?{urlencode({'request': request_id})}" if request_id else "manage"
    response = see_other(f"{ctx.config.auth_base}/{target}")
    set_cookie(response, ctx.config, SESSION_COOKIE, value, ctx.config.session_seconds)
    response.delete_cookie(LOGIN_COOKIE, path="/auth")
    return response


def _form_page(
    ctx: AuthContext, request_id: str, pending: PendingRequest | None, *, error: str | None = None
) -> Response:
    """The sign-in page with a fresh CSRF value, also set as its cookie."""
    client = ctx.registry.client(pending.client_id) if pending else None
    csrf = secrets.token_urlsafe(24)
    response = login_page(
        request_id=request_id, csrf=csrf, client_name=client.name if client else "You", error=error
    )
    set_cookie(response, ctx.config, LOGIN_COOKIE, csrf, ctx.config.request_seconds)
    return response
