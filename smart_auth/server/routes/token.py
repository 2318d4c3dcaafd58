"""The machine endpoints of the authorization server: POST /auth/token (authorization_code,
refresh_token, client_credentials), /auth/introspect (RFC 7662, also with a resource server's
bearer token: SMART "Token Introspection") and /auth/revoke (RFC 7009). Answers are JSON, never
cached."""

from __future__ import annotations

import json
from collections.abc import Callable

from authlib.oauth2.base import OAuth2Error
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from smart_auth.audit_note import note
from smart_auth.server.adapter import FormRequest
from smart_auth.server.routes.context import AuthContext, Context
from smart_auth.server.routes.http import FORM, NO_STORE, json_error, read_form
from smart_auth.server.token_endpoints import introspect_with_bearer

router = APIRouter()


@router.post("/token")
async def token(request: Request, ctx: Context) -> Response:
    response = await _machine(ctx, request, ctx.server.create_token_response)
    if response.status_code == 200:
        body = json.loads(bytes(response.body))
        note(request.scope, action="token", detail=f"granted {body.get('scope', '')}"[:200])
    return response


@router.post("/introspect")
async def introspect(request: Request, ctx: Context) -> Response:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return await _machine(
            ctx, request, lambda req: ctx.server.create_endpoint_response("introspection", req)
        )
    pairs = dict(await read_form(request) or [])
    if "token" not in pairs:
        return json_error(400, "invalid_request", "token is required")
    try:
        body = await run_in_threadpool(
            introspect_with_bearer,
            ctx.server,
            header[7:].strip(),
            pairs["token"],
            pairs.get("token_type_hint"),
        )
    except OAuth2Error as error:
        return ctx.server.handle_response(*error())
    return Response(json.dumps(body), media_type="application/json", headers=NO_STORE)


@router.post("/revoke")
async def revoke(request: Request, ctx: Context) -> Response:
    return await _machine(ctx, request, lambda req: ctx.server.create_endpoint_response("revocation", req))


async def _machine(ctx: AuthContext, request: Request, handle: Callable[[FormRequest], Response]) -> Response:
    """A form in, authlib's answer out, as uncacheable JSON."""
    pairs = await read_form(request)
    if pairs is None:
        return json_error(400, "invalid_request", f"send {FORM}")
    req = FormRequest("POST", ctx.config.token_url, request.headers, form=pairs)
    response = await run_in_threadpool(handle, req)
    response.headers.update(NO_STORE)
    response.headers.setdefault("Content-Type", "application/json")
    return response
