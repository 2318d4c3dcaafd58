"""The DICOMweb application mounted at /dicomweb (PS3.18), and WADO-URI at /wado, behind the same
SMART tokens as /fhir.

Every route depends on the authorization the HTTP composition hands in (`DicomwebAuthorization`;
a test walks the routes to keep it so). A missing or refused token answers 401 with a Bearer
challenge, a token without the needed scope 403 (PS3.18 8.5 leaves authorization to the origin
server; RFC 6750 says how to refuse).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request, Response

from dicom_bridge.dicomweb.authorization import DicomwebAuthorization
from dicom_bridge.dicomweb.qido import qido_router
from dicom_bridge.dicomweb.rendered import rendered_router
from dicom_bridge.dicomweb.stow import stow_router
from dicom_bridge.dicomweb.wado import wado_router
from dicom_bridge.dicomweb.wado_uri import wado_uri_router
from storage.errors import InsufficientScope, Unauthenticated
from storage.usecases.ingest import Ingest
from storage.usecases.query import Query
from storage.usecases.retrieve import Retrieve


@dataclass(frozen=True)
class DicomwebConfig:
    base_url: str  # public URL of this DICOMweb service, e.g. https://host/dicomweb
    max_upload_bytes: int
    max_parts: int  # instances in one STOW-RS request


def create_dicomweb_app(
    ingest: Ingest,
    retrieve: Retrieve,
    query: Query,
    config: DicomwebConfig,
    authorization: DicomwebAuthorization,
) -> FastAPI:
    app = FastAPI(title="DICOMweb", openapi_url=None, docs_url=None, redoc_url=None)
    refuse_tokens(app, authorization, config.base_url)
    app.include_router(
        stow_router(
            ingest, config.base_url, config.max_upload_bytes, config.max_parts, authorization.may_store
        )
    )
    app.include_router(wado_router(retrieve, config.base_url, authorization.may_read))
    app.include_router(rendered_router(retrieve, authorization.may_read))
    app.include_router(qido_router(query, config.base_url, authorization.may_search))
    return app


def create_wado_uri_app(retrieve: Retrieve, base_url: str, authorization: DicomwebAuthorization) -> FastAPI:
    """WADO-URI (PS3.18 9), mounted at /wado: the same tokens and reading rules as WADO-RS."""
    app = FastAPI(title="WADO-URI", openapi_url=None, docs_url=None, redoc_url=None)
    refuse_tokens(app, authorization, base_url)
    app.include_router(wado_uri_router(retrieve, authorization.may_read))
    return app


def refuse_tokens(app: FastAPI, authorization: DicomwebAuthorization, realm: str) -> None:
    """401 for a missing or refused token, 403 for a missing scope, with the Bearer challenge."""

    def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Unauthenticated | InsufficientScope)
        status = 401 if isinstance(exc, Unauthenticated) else 403
        return Response(
            f"{exc}\n",
            status_code=status,
            media_type="text/plain; charset=utf-8",
            headers={"WWW-Authenticate": authorization.challenge(exc, realm)},
        )

    app.add_exception_handler(Unauthenticated, refused)
    app.add_exception_handler(InsufficientScope, refused)
