"""HTTP details the /auth routers share: form bodies, cookies, redirects and JSON errors."""

from __future__ import annotations

import json

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from smart_auth.config import AuthConfig

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def read_form(request: Request) -> list[tuple[str, str]] | None:
    """The form's pairs in order (repeated names kept), or None when the body is not a form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM:
        return None
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def set_cookie(response: Response, config: AuthConfig, name: str, value: str, max_age: int) -> None:
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


def json_error(status: int, error: str, description: str) -> Response:
    """An RFC 6749 5.2 error body."""
    return Response(
        json.dumps({"error": error, "error_description": description}),
        status_code=status,
        media_type="application/json",
        headers=NO_STORE,
    )
