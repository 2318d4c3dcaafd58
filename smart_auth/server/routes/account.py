"""The signed-in user's own pages: GET|POST /auth/logout ends the browser session, GET|POST
/auth/manage lists the user's grants, each revocable (SMART `management_endpoint`)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from smart_auth.server.pages import GrantLine, error_page, logout_page, manage_page
from smart_auth.server.routes.context import SESSION_COOKIE, Context
from smart_auth.server.routes.http import read_form, see_other

router = APIRouter()


@router.get("/logout")
def logout_form(request: Request, ctx: Context) -> Response:
    session = ctx.current(request)
    return logout_page(csrf=session.csrf if session else None)


@router.post("/logout")
async def logout(request: Request, ctx: Context) -> Response:
    form = dict(await read_form(request) or [])
    session = await run_in_threadpool(ctx.current, request)
    if session is not None and secrets.compare_digest(session.csrf, form.get("csrf", "")):
        await run_in_threadpool(ctx.sessions.logout, request.cookies.get(SESSION_COOKIE))
    response = logout_page(csrf=None, done=True)
    response.delete_cookie(SESSION_COOKIE, path="/auth")
    return response


@router.get("/manage")
def manage_form(request: Request, ctx: Context) -> Response:
    session = ctx.current(request)
    user = ctx.registry.user(session.user_id) if session else None
    if session is None or user is None:
        return see_other(f"{ctx.config.auth_base}/login")
    lines = []
    for grant, created in ctx.tokens.grants_of(user.id):
        client = ctx.registry.client(grant.client_id)
        name = client.name if client else grant.client_id
        lines.append(GrantLine(grant.id, name, grant.scope, created.date().isoformat()))
    return manage_page(csrf=session.csrf, username=user.username, grants=lines)


@router.post("/manage")
async def manage(request: Request, ctx: Context) -> Response:
    form = dict(await read_form(request) or [])
    session = await run_in_threadpool(ctx.current, request)
    if session is None or not secrets.compare_digest(session.csrf, form.get("csrf", "")):
        return error_page("The form has expired. Please sign in again.", status=403)
    grant = await run_in_threadpool(ctx.tokens.grant, form.get("grant", ""))
    if grant is not None and grant.user_id == session.user_id:
        await run_in_threadpool(ctx.tokens.revoke_grant, grant.id)
    return see_other(f"{ctx.config.auth_base}/manage")
