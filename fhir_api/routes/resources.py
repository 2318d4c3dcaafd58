"""Read, vread, history and search for every type the store serves (FHIR R4 3.1.0).

Every route depends on the authorization guard and decides on the token's scopes before it
reads anything (`Access.require`): read, vread and instance history need `r`, search (GET and
POST `_search`) needs `s`. What the token may see (patient compartment, granular scopes) is
applied by the search engine itself: an out-of-compartment read answers 404, exactly like an
unknown id, and `_include` returns only resources the token may read.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from fhir_api.bundles import history, searchset
from fhir_api.responses import fhir_json, resource_response
from smart_auth.resource_server.access import Access
from smart_auth.resource_server.guard import Guard
from storage.errors import Invalid, NotFound
from storage.usecases.search import SUPPORTED_TYPES, Search

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def resources_router(search: Search, fhir_base: str, guard: Guard) -> APIRouter:
    router = APIRouter()
    token = Depends(guard)

    @router.get("/{res_type}")
    def search_type(res_type: str, request: Request, access: Access = token) -> Response:
        _allowed(access, res_type, "s")
        return _search(res_type, list(request.query_params.multi_items()), request, access)

    @router.post("/{res_type}/_search")
    async def search_post(res_type: str, request: Request, access: Access = token) -> Response:
        _allowed(access, res_type, "s")
        if (
            request.headers.get("content-type", "").split(";")[0].strip()
            != "application/x-www-form-urlencoded"
        ):
            raise Invalid("POST _search takes application/x-www-form-urlencoded parameters")
        form = await request.form()
        pairs = list(request.query_params.multi_items())
        pairs += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        return await run_in_threadpool(_search, res_type, pairs, request, access)

    @router.get("/{res_type}/{res_id}")
    def read(res_type: str, res_id: str, request: Request, access: Access = token) -> Response:
        _allowed(access, res_type, "r")
        found = search.read(res_type, _valid_id(res_id), visibility=access.visibility("r"))
        return resource_response(found, request)

    @router.get("/{res_type}/{res_id}/_history")
    def read_history(res_type: str, res_id: str, request: Request, access: Access = token) -> Response:
        _allowed(access, res_type, "r")
        versions = search.history(res_type, _valid_id(res_id), visibility=access.visibility("r"))
        return fhir_json(history(versions, fhir_base), request=request)

    @router.get("/{res_type}/{res_id}/_history/{version_id}")
    def vread(
        res_type: str, res_id: str, version_id: str, request: Request, access: Access = token
    ) -> Response:
        _allowed(access, res_type, "r")
        found = search.vread(res_type, _valid_id(res_id), version_id, visibility=access.visibility("r"))
        return resource_response(found, request)

    def _search(res_type: str, pairs: list[tuple[str, str]], request: Request, access: Access) -> Response:
        lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
        query = search.parse(res_type, pairs, lenient=lenient)
        result = search.search(
            query, visibility=access.visibility("s"), include_visibility=access.visibility("r")
        )
        return fhir_json(searchset(result, fhir_base), request=request)

    return router


def _allowed(access: Access, res_type: str, letter: str) -> None:
    """Unsupported types are 404 for everyone; then the scopes decide, before any data is read."""
    if res_type not in SUPPORTED_TYPES:
        raise NotFound(f"resource type {res_type} is not supported")
    access.require(res_type, letter)


def _valid_id(res_id: str) -> str:
    if not _ID.match(res_id):
        raise Invalid("a resource id has 1 to 64 characters from A-Z a-z 0-9 - .")
    return res_id
