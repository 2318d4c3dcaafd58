"""Public documents of the authorization server: GET /auth/jwks (our signing keys, for id_token
verification) and /auth/smart-style.json (SMART App Launch `smart_style_url`)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response

from smart_auth.server.pages import SMART_STYLE
from smart_auth.server.routes.context import Context

router = APIRouter()


@router.get("/jwks")
def jwks(ctx: Context) -> Response:
    return Response(
        json.dumps(ctx.server.keys.jwks()),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/smart-style.json")
def smart_style() -> Response:
    return Response(json.dumps(SMART_STYLE), media_type="application/json")
