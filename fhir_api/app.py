"""The FHIR R4 application mounted at /fhir.

Open: `metadata` and the discovery documents under `.well-known` (SMART App Launch requires
them readable without a token). Everything else depends on the authorization `guard`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request, Response

from fhir_api import errors
from fhir_api.responses import fhir_json, operation_outcome, wants_unsupported_format
from fhir_api.routes.resources import resources_router
from fhir_api.routes.writes import writes_router
from mapping.fhir.capability import capability_statement
from smart_auth.resource_server.guard import Guard
from storage.usecases.search import Search
from storage.usecases.writes import Writes


@dataclass(frozen=True)
class FhirConfig:
    fhir_base: str  # public URL of this FHIR endpoint, e.g. https://host/fhir
    software_version: str
    started: datetime
    security: dict[str, Any] | None = None  # CapabilityStatement.rest.security
    well_known: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> document


def create_fhir_app(search: Search, writes: Writes, config: FhirConfig, guard: Guard) -> FastAPI:
    app = FastAPI(title="FHIR R4", openapi_url=None, docs_url=None, redoc_url=None)
    errors.install(app, realm=config.fhir_base)
    capability = capability_statement(
        fhir_base=config.fhir_base,
        software_version=config.software_version,
        published=config.started,
        security=config.security,
    ).model_dump(mode="json", exclude_none=True)

    @app.middleware("http")
    async def only_json(request: Request, call_next: Any) -> Response:
        discovery = "/.well-known/" in request.url.path  # JSON whatever the Accept (SMART)
        if not discovery and wants_unsupported_format(request) is not None:
            return fhir_json(operation_outcome("not-supported", "only JSON is supported"), status=406)
        response: Response = await call_next(request)
        return response

    @app.get("/metadata")
    def metadata(request: Request) -> Response:
        return fhir_json(capability, request=request)

    documents = {name: json.dumps(doc, separators=(",", ":")) for name, doc in config.well_known.items()}

    @app.get("/.well-known/{name}")
    def well_known(name: str) -> Response:
        """Discovery: always application/json, whatever the Accept header (SMART conformance)."""
        body = documents.get(name)
        if body is None:
            return fhir_json(operation_outcome("not-found", "no such discovery document"), status=404)
        return Response(body, media_type="application/json", headers={"Cache-Control": "max-age=300"})

    app.include_router(resources_router(search, config.fhir_base, guard))
    app.include_router(writes_router(writes, config.fhir_base, guard))
    return app
