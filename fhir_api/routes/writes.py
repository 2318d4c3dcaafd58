"""Create (POST) and update (PUT) of the types clients write (FHIR R4 3.1.0.4, 3.1.0.5).

The scopes decide first (`Access.require_write`: `c` or `u` through a user/ or system/ scope);
then the body is read as JSON (400 when it is not), the use case validates and stores it.
Answers: 201 (created) or 200 with `Location`, `ETag` and `Last-Modified`, and a body as the
client prefers (`Prefer: return=minimal | representation | OperationOutcome`; representation
by default). A type we serve but derive ourselves answers 405.
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from fhir_api.responses import fhir_json, operation_outcome
from mapping.fhir import json_text
from mapping.fhir.search_params import WRITABLE
from smart_auth.resource_server.access import Access
from smart_auth.resource_server.guard import Guard
from storage.errors import Invalid, NotFound, TooLarge
from storage.usecases.search import SUPPORTED_TYPES
from storage.usecases.writes import Writes, Written

MAX_BODY = 16 * 1024 * 1024  # a report with an embedded PDF; larger documents belong in a Binary
_FHIR_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}


def writes_router(writes: Writes, fhir_base: str, guard: Guard) -> APIRouter:
    router = APIRouter()
    token = Depends(guard)

    @router.post("/{res_type}")
    async def create(res_type: str, request: Request, access: Access = token) -> Response:
        _writable(res_type)
        access.require_write(res_type, "c")
        body = await _json_body(request)
        condition = request.headers.get("if-none-exist")
        pairs = parse_qsl(condition.lstrip("?"), keep_blank_values=True) if condition is not None else None
        written = await run_in_threadpool(
            writes.create, res_type, body, if_none_exist=pairs, visibility=access.visibility("r")
        )
        return _answer(written, request, fhir_base)

    @router.put("/{res_type}/{res_id}")
    async def update(res_type: str, res_id: str, request: Request, access: Access = token) -> Response:
        _writable(res_type)
        access.require_write(res_type, "u")
        body = await _json_body(request)
        written = await run_in_threadpool(
            writes.update, res_type, res_id, body, if_match=request.headers.get("if-match")
        )
        return _answer(written, request, fhir_base)

    return router


def _writable(res_type: str) -> None:
    if res_type not in SUPPORTED_TYPES:
        raise NotFound(f"resource type {res_type} is not supported")
    if res_type not in WRITABLE:
        raise HTTPException(405, headers={"Allow": "GET, HEAD"})


async def _json_body(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _FHIR_JSON_TYPES:
        raise HTTPException(415, f"Content-Type {media} is not supported; send application/fhir+json")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise TooLarge(f"a resource is at most {MAX_BODY // (1024 * 1024)} MiB")
    try:
        return json_text.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise Invalid(f"the body is not JSON: {exc}") from None


def _answer(written: Written, request: Request, fhir_base: str) -> Response:
    stored = written.resource
    location = f"{fhir_base}/{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"
    headers = {
        "Location": location,
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated, usegmt=True),
    }
    status = 201 if written.created else 200
    prefer = _return_preference(request.headers.get("prefer", ""))
    if prefer == "minimal":
        return Response(status_code=status, headers=headers)
    if prefer == "OperationOutcome":
        verb = "created" if written.created else ("updated" if written.changed else "unchanged")
        body = operation_outcome("informational", f"{stored.res_type}/{stored.res_id} {verb}", "information")
        return fhir_json(body, status=status, request=request, headers=headers)
    return fhir_json(stored.to_json(), status=status, request=request, headers=headers)


def _return_preference(header: str) -> str:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "return":
            return value.strip().strip('"')
    return "representation"
