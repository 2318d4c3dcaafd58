"""Read, vread, history and search for every type the store serves (FHIR R4 3.1.0)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from fhir_api.bundles import history, searchset
from fhir_api.responses import fhir_json, resource_response
from storage.errors import Invalid
from storage.usecases.search import Search

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def resources_router(search: Search, fhir_base: str) -> APIRouter:
    router = APIRouter()

    @router.get("/{res_type}")
    def search_type(res_type: str, request: Request) -> Response:
        return _search(res_type, list(request.query_params.multi_items()), request)

    @router.post("/{res_type}/_search")
    async def search_post(res_type: str, request: Request) -> Response:
        if (
            request.headers.get("content-type", "").split(";")[0].strip()
            != "application/x-www-form-urlencoded"
        ):
            raise Invalid("POST _search takes application/x-www-form-urlencoded parameters")
        form = await request.form()
        pairs = list(request.query_params.multi_items())
        pairs += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        return await run_in_threadpool(_search, res_type, pairs, request)

    @router.get("/{res_type}/{res_id}")
    def read(res_type: str, res_id: str, request: Request) -> Response:
        return resource_response(search.read(res_type, _valid_id(res_id)), request)

    @router.get("/{res_type}/{res_id}/_history")
    def read_history(res_type: str, res_id: str, request: Request) -> Response:
        return fhir_json(history(search.history(res_type, _valid_id(res_id)), fhir_base), request=request)

    @router.get("/{res_type}/{res_id}/_history/{version_id}")
    def vread(res_type: str, res_id: str, version_id: str, request: Request) -> Response:
        return resource_response(search.vread(res_type, _valid_id(res_id), version_id), request)

    def _search(res_type: str, pairs: list[tuple[str, str]], request: Request) -> Response:
        lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
        query = search.parse(res_type, pairs, lenient=lenient)
        return fhir_json(searchset(search.search(query), fhir_base), request=request)

    return router


def _valid_id(res_id: str) -> str:
    if not _ID.match(res_id):
        raise Invalid("a resource id has 1 to 64 characters from A-Z a-z 0-9 - .")
    return res_id
