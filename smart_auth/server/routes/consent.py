"""GET|POST /auth/consent: the signed-in user approves or denies a held request, unticks scopes
and picks a patient when the app needs one (the decision itself is `Authorization.decide`)."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from smart_auth.audit_note import note
from smart_auth.server.authorize import Redirect, Refuse
from smart_auth.server.pages import consent_page, error_page
from smart_auth.server.registry import User
from smart_auth.server.routes.context import AuthContext, Context
from smart_auth.server.routes.http import read_form, see_other
from smart_auth.server.sessions import LoginSession, PendingRequest

EXPIRED_REQUEST = "This request has expired. Start again from the application."

router = APIRouter()


@router.get("/consent")
def consent_form(request: Request, ctx: Context) -> Response:
    request_id = request.query_params.get("request", "")
    pending = ctx.sessions.pending(request_id)
    if pending is None:
        return error_page(EXPIRED_REQUEST)
    session = ctx.current(request)
    user = ctx.registry.user(session.user_id) if session else None
    if session is None or user is None:
        return see_other(f"{ctx.config.auth_base}/login?{urlencode({'request': request_id})}")
    return _show(ctx, pending, session, user, query=request.query_params.get("q", "")[:100])


@router.post("/consent")
async def consent(request: Request, ctx: Context) -> Response:
    pairs = await read_form(request)
    if pairs is None:
        return error_page("send the consent form as a form", status=415)
    selected = [v for k, v in pairs if k == "scope"]
    return await run_in_threadpool(_decide, ctx, request, dict(pairs), selected)


def _decide(ctx: AuthContext, request: Request, form: dict[str, str], selected: list[str]) -> Response:
    session = ctx.current(request)
    if session is None or not secrets.compare_digest(session.csrf, form.get("csrf", "")):
        return error_page("The consent form has expired. Please start again.", status=403)
    user = ctx.registry.user(session.user_id)
    pending = ctx.sessions.pending(form.get("request", ""))
    if user is None or pending is None:
        return error_page(EXPIRED_REQUEST)
    note(request.scope, user=user.fhir_user, client_id=pending.client_id)
    outcome = ctx.authorization.decide(
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
    return _show(ctx, pending, session, user, error=outcome)


def _show(
    ctx: AuthContext,
    pending: PendingRequest,
    session: LoginSession,
    user: User,
    *,
    query: str = "",
    error: str | None = None,
) -> Response:
    view = ctx.authorization.view(pending, user, query)
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
