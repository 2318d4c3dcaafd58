"""GET|POST /auth/authorize: SMART App Launch step 3 (authorize-post too). A valid request is
held and the browser goes on to sign in or straight to consent; errors the client may hear of go
back to its redirect URI, the others are shown."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from smart_auth.audit_note import note
from smart_auth.server.adapter import FormRequest
from smart_auth.server.authorize import Held, Redirect, Refuse
from smart_auth.server.pages import error_page
from smart_auth.server.routes.context import Context
from smart_auth.server.routes.http import read_form, see_other

router = APIRouter()


@router.api_route("/authorize", methods=["GET", "POST"])
async def authorize(request: Request, ctx: Context) -> Response:
    url = ctx.config.auth_base + "/authorize"
    if request.method == "POST":
        pairs = await read_form(request)
        if pairs is None:
            return error_page("send the authorization request as a form", status=415)
        req = FormRequest("POST", url, request.headers, form=pairs)
    else:
        req = FormRequest("GET", url, request.headers, args=list(request.query_params.multi_items()))
    outcome = await run_in_threadpool(ctx.authorization.begin, req)
    if isinstance(outcome, Redirect):
        return see_other(outcome.url)
    if isinstance(outcome, Refuse):
        return error_page(outcome.message, status=outcome.status)
    assert isinstance(outcome, Held)
    note(request.scope, client_id=outcome.request.client_id)
    step = "consent" if await run_in_threadpool(ctx.current, request) else "login"
    return see_other(f"{ctx.config.auth_base}/{step}?{urlencode({'request': outcome.request.id})}")
