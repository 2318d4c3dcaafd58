"""The FHIR R4 application mounted at /fhir."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, Request, Response

from fhir_api import errors
from fhir_api.responses import fhir_json, operation_outcome, wants_unsupported_format
from fhir_api.routes.resources import resources_router
from mapping.capability import capability_statement
from storage.usecases.search import Search


@dataclass(frozen=True)
class FhirConfig:
    fhir_base: str  # public URL of this FHIR endpoint, e.g. https://host/fhir
    software_version: str
    started: datetime


def create_fhir_app(search: Search, config: FhirConfig, guards: Sequence[Any] = ()) -> FastAPI:
    """`guards`: FastAPI dependencies every resource route runs first (the authorization hook)."""
    app = FastAPI(title="FHIR R4", openapi_url=None, docs_url=None, redoc_url=None)
    errors.install(app)
    capability = capability_statement(
        fhir_base=config.fhir_base, software_version=config.software_version, published=config.started
    ).model_dump(mode="json", exclude_none=True)

    @app.middleware("http")
    async def only_json(request: Request, call_next: Any) -> Response:
        asked = wants_unsupported_format(request)
        if asked is not None:
            return fhir_json(operation_outcome("not-supported", "only JSON is supported"), status=406)
        response: Response = await call_next(request)
        return response

    @app.get("/metadata")
    def metadata(request: Request) -> Response:
        return fhir_json(capability, request=request)

    app.include_router(resources_router(search, config.fhir_base), dependencies=[Depends(g) for g in guards])
    return app
