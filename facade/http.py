"""The HTTP application: /fhir, /dicomweb, /wado (WADO-URI) and /auth mounted side by side, /healthz,
/metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from dicom_bridge.dicomweb.app import DicomwebConfig, create_dicomweb_app, create_wado_uri_app
from facade.audit_http import AuditMiddleware
from facade.dicomweb_auth import DicomwebTokens
from facade.wiring import Services, software_version
from fhir_api.app import FhirConfig, create_fhir_app
from smart_auth.cors import CorsMiddleware
from smart_auth.resource_server.access import Access
from smart_auth.resource_server.guard import www_authenticate
from smart_auth.server import discovery
from smart_auth.server.routes import create_auth_app
from storage.dicom_index.models import InstanceRow, PatientRow, SeriesRow, StudyRow
from storage.errors import InsufficientScope, Unauthenticated


def build_http_app(services: Services) -> Starlette:
    """/fhir, /dicomweb, /wado and (built-in mode) /auth, behind CORS and the access audit."""
    settings = services.settings
    base = settings.resolved_base_url()
    auth = services.auth
    # one Starlette router over the mounted applications: a FastAPI application here too would put
    # its middleware stack and router in front of every request a second time
    mounts: list[BaseRoute] = []
    if auth.builtin is not None:
        security = discovery.security(auth.builtin.config)
        well_known = {
            "smart-configuration": discovery.smart_configuration(auth.builtin.config),
            "openid-configuration": discovery.openid_configuration(auth.builtin.config),
        }
    else:
        assert auth.external is not None
        security = discovery.external_security(auth.external)
        well_known = {"smart-configuration": discovery.external_smart_configuration(auth.external)}
    mounts.append(
        Mount(
            "/fhir",
            create_fhir_app(
                services.search,
                services.writes,
                FhirConfig(
                    fhir_base=f"{base}/fhir",
                    software_version=software_version(),
                    started=datetime.now(UTC),
                    security=security,
                    well_known=well_known,
                ),
                auth.guard,
            ),
        )
    )
    mounts.append(
        Mount(
            "/dicomweb",
            create_dicomweb_app(
                services.ingest,
                services.retrieve,
                services.query,
                DicomwebConfig(
                    base_url=f"{base}/dicomweb",
                    max_upload_bytes=settings.stow_max_bytes,
                    max_parts=settings.stow_max_parts,
                ),
                DicomwebTokens(auth.guard),
            ),
        )
    )
    mounts.append(
        Mount("/wado", create_wado_uri_app(services.retrieve, f"{base}/wado", DicomwebTokens(auth.guard)))
    )
    if auth.builtin is not None:
        builtin = auth.builtin
        mounts.append(
            Mount(
                "/auth",
                create_auth_app(
                    config=builtin.config,
                    server=builtin.server,
                    authorization=builtin.authorization,
                    sessions=builtin.sessions,
                    search=services.search,
                ),
            )
        )
        registered = builtin.registry.registered_origins
    else:
        registered = set
    configured = settings.extra_cors_origins()

    def origins() -> set[str]:
        return registered() | configured

    def healthz(_request: Request) -> Response:
        try:
            with services.db.read() as session:
                session.execute(text("SELECT 1"))
            probe = services.blobs.staging_dir() / ".healthz"
            probe.write_bytes(b"ok")
            probe.unlink()
        except Exception:
            return Response('{"status":"unavailable"}', status_code=503, media_type="application/json")
        return Response('{"status":"ok"}', media_type="application/json")

    def metrics(request: Request) -> Response:
        """Operational gauges for anyone; the clinical counts (patients, studies, series, instances)
        only with a bearer token that may search Patient and ImagingStudy through system/ or user/
        scopes and is not a patient user's."""
        with_counts = bool(request.headers.get("authorization"))
        if with_counts:
            try:
                if not may_count(auth.guard.check(request)):
                    raise InsufficientScope("counts need system/ or user/ search", needed="system/*.rs")
            except (Unauthenticated, InsufficientScope) as exc:
                return Response(
                    str(exc),
                    status_code=401 if isinstance(exc, Unauthenticated) else 403,
                    headers={"WWW-Authenticate": www_authenticate(exc, f"{base}/fhir")},
                )
        with services.db.read() as session:
            counts = {
                name: session.scalar(select(func.count()).select_from(model)) or 0
                for name, model in (
                    ("patients", PatientRow),
                    ("studies", StudyRow),
                    ("series", SeriesRow),
                    ("instances", InstanceRow),
                )
                if with_counts
            }
            stored_bytes = session.scalar(select(func.coalesce(func.sum(InstanceRow.size), 0))) or 0
            pending = (
                session.scalar(
                    select(func.count())
                    .select_from(StudyRow)
                    .where(StudyRow.published_seq < StudyRow.change_seq)
                )
                or 0
            )
        lines = [
            "# TYPE facade_stored_bytes gauge",
            f"facade_stored_bytes {stored_bytes}",
            "# TYPE facade_studies_unpublished gauge",
            f"facade_studies_unpublished {pending}",
        ]
        if counts:
            lines += ["# TYPE facade_index_rows gauge"]
            lines += [f'facade_index_rows{{level="{name}"}} {value}' for name, value in counts.items()]
        return Response(
            "\n".join(lines) + "\n",
            media_type="text/plain; version=0.0.4",
            headers={"Cache-Control": "no-store"} if with_counts else None,
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *mounts,
        ],
        middleware=[
            Middleware(AuditMiddleware, audit=services.audit),
            Middleware(CorsMiddleware, origins=origins),
        ],
    )


def may_count(access: Access) -> bool:
    """Whether a token may see how many patients and studies the archive holds: search on Patient
    and ImagingStudy through a system/ or user/ scope, and not a patient user's token."""
    if access.user_patient is not None:
        return False
    return all(
        any(s.context in ("system", "user") for s in access.scopes.permitting(res_type, "s"))
        for res_type in ("Patient", "ImagingStudy")
    )
