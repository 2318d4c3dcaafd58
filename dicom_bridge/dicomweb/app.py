"""The DICOMweb application mounted at /dicomweb (PS3.18)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI

from dicom_bridge.dicomweb.stow import stow_router
from storage.usecases.ingest import Ingest


@dataclass(frozen=True)
class DicomwebConfig:
    base_url: str  # public URL of this DICOMweb service, e.g. https://host/dicomweb
    max_upload_bytes: int


def create_dicomweb_app(ingest: Ingest, config: DicomwebConfig, guards: Sequence[Any] = ()) -> FastAPI:
    """`guards`: FastAPI dependencies every route runs first (the authorization hook)."""
    app = FastAPI(title="DICOMweb", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(
        stow_router(ingest, config.base_url, config.max_upload_bytes),
        dependencies=[Depends(g) for g in guards],
    )
    return app
