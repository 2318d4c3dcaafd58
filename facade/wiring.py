"""Build the services from settings: the one place that knows every concrete class."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from facade.settings import Settings
from mapping.dicom_facts import local_issuer_system
from storage.blobs import FileBlobStore
from storage.db import Database, make_engine
from storage.fhir_store import FhirStore
from storage.migrate import upgrade
from storage.usecases.ingest import Ingest, PatientIdentity
from storage.usecases.publish import PublishConfig, Publisher
from storage.usecases.search import Search


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    blobs: FileBlobStore
    ingest: Ingest
    store: FhirStore
    publisher: Publisher
    search: Search


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(make_engine(settings.resolved_database_url()))
    if migrate:
        upgrade(db.engine)
    zone = settings.site_zone()
    blobs = FileBlobStore(settings.data_dir / "blobs")
    identity = PatientIdentity(
        default_system=settings.patient_id_system,
        issuer_system=local_issuer_system(settings.issuer_system_base, settings.issuer_systems),
    )
    store = FhirStore(zone)
    publisher = Publisher(
        db,
        store,
        PublishConfig(
            site_zone=zone, stable_age=settings.stable_age(), base_url=settings.resolved_base_url()
        ),
    )
    search = Search(db, store, publisher, site_zone=zone, default_count=settings.search_default_count)
    ingest = Ingest(db, blobs, identity, min_free_bytes=settings.min_free_bytes)
    return Services(settings, db, blobs, ingest, store, publisher, search)


def software_version() -> str:
    try:
        return version("fhir-imaging-facade")
    except PackageNotFoundError:
        return "0+unknown"
