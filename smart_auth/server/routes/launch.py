"""POST /auth/launch: an EHR, authenticated as a client registered with can_launch, creates an
EHR launch context (SMART App Launch "EHR launch"; validated and stored by `create_launch`)."""

from __future__ import annotations

import json

from authlib.oauth2.base import OAuth2Error
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from smart_auth.audit_note import note
from smart_auth.server.adapter import FormRequest
from smart_auth.server.launches import create_launch
from smart_auth.server.routes.context import Context
from smart_auth.server.routes.http import FORM, NO_STORE, json_error, read_form
from storage.errors import Invalid

EHR_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

router = APIRouter()


@router.post("/launch")
async def launch(request: Request, ctx: Context) -> Response:
    """The EHR hands over the context (patient, encounter, fhirUser, intent, need_patient_banner,
    smart_style_url) and the app's client_id; it gets the opaque launch id, the `iss` and, when
    the app registered one, the URL to open."""
    pairs = await read_form(request)
    if pairs is None:
        return json_error(400, "invalid_request", f"send {FORM}")
    req = FormRequest("POST", f"{ctx.config.auth_base}/launch", request.headers, form=pairs)
    try:
        ehr = await run_in_threadpool(ctx.server.authenticate_client, req, EHR_AUTH_METHODS, "launch")
    except OAuth2Error as error:
        return ctx.server.handle_response(*error())
    if not ehr.can_launch:
        return json_error(403, "unauthorized_client", "this client may not create launches")
    note(request.scope, client_id=ehr.client_id)
    try:
        created = await run_in_threadpool(
            create_launch,
            sessions=ctx.sessions,
            registry=ctx.registry,
            search=ctx.search,
            config=ctx.config,
            form=dict(pairs),
        )
    except Invalid as exc:
        return json_error(400, "invalid_request", str(exc))
    return Response(json.dumps(created), status_code=201, media_type="application/json", headers=NO_STORE)
