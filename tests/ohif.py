"""The OHIF Viewer's production build (`.ci/fetch-ohif`), served as a static site with its
`app-config.js` written to sign in with the facade's SMART authorization server (OpenID Connect,
authorization code with PKCE) and to read studies from its DICOMweb API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tests.tools import missing

VERSION = "3.13.2"
DIST = Path(__file__).resolve().parents[1] / ".cache" / "ohif" / VERSION / "dist"


def ohif_dist() -> Path:
    """The viewer's build, or skip (fail in CI) when `.ci/fetch-ohif` has not fetched it."""
    if not (DIST / "index.html").is_file():
        missing(f"the OHIF Viewer {VERSION} is not fetched (run .ci/fetch-ohif)")
    return DIST


def app_config(*, facade: str, client_id: str, scope: str) -> str:
    """`window.config` for one DICOMweb data source, the facade's, behind its OpenID Connect sign-in
    (OHIF hands the user's access token to every DICOMweb request as a bearer token)."""
    fhir = f"{facade}/fhir"
    config: dict[str, Any] = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 1,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "defaultDataSourceName": "facade",
        "oidc": [
            {
                "authority": fhir,
                "client_id": client_id,
                "redirect_uri": "/callback",
                "response_type": "code",
                "scope": scope,
                "post_logout_redirect_uri": "/",
                "extraQueryParams": {"aud": fhir},
                "loadUserInfo": False,
            }
        ],
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "facade",
                "configuration": {
                    "friendlyName": "fhir-imaging-facade",
                    "name": "facade",
                    "wadoUriRoot": f"{facade}/wado",
                    "qidoRoot": f"{facade}/dicomweb",
                    "wadoRoot": f"{facade}/dicomweb",
                    "qidoSupportsIncludeField": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": True,
                    "supportsWildcard": True,
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True},
                },
            }
        ],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


def viewer_site(dist: Path, config: str) -> Starlette:
    """The build's files, `app-config.js` as given, and index.html for every other path (the
    viewer's own routes: /callback, /viewer?StudyInstanceUIDs=…)."""
    root = dist.resolve()

    async def serve(request: Request) -> Response:
        path = request.path_params["path"]
        if path == "app-config.js":
            return Response(config, media_type="application/javascript")
        target = (root / path).resolve()
        if path and target.is_relative_to(root) and target.is_file():
            return FileResponse(target)
        return FileResponse(root / "index.html")

    return Starlette(routes=[Route("/{path:path}", serve)])
