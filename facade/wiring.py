"""Build the services from settings: the one place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy.orm import Session

from facade.settings import Settings
from mapping.dicom.facts import local_issuer_system
from mapping.hl7.charsets import Charset, charset_named
from mapping.hl7.orders import OrderRules
from mapping.hl7.oru import Sender
from smart_auth.config import AuthConfig, ExternalAuthConfig
from smart_auth.jwks_fetch import JwksFetcher
from smart_auth.resource_server.access import VisibilityRules
from smart_auth.resource_server.external import IntrospectionVerifier, JwtVerifier
from smart_auth.resource_server.guard import Guard, LocalVerifier, TokenVerifier
from smart_auth.scopes import ScopeSet, parse_scopes
from smart_auth.server.adapter import SmartServer
from smart_auth.server.authorize import Authorization
from smart_auth.server.client_assertion import PrivateKeyJwt
from smart_auth.server.keys import KeyRing
from smart_auth.server.registry import Registry
from smart_auth.server.sessions import Sessions
from smart_auth.server.tokens import Tokens
from storage.audit.store import AuditStore
from storage.blobs import FileBlobStore
from storage.clock import utcnow
from storage.db import Database, make_engine
from storage.fhir_store.store import FhirStore, StoredResource
from storage.migrate import upgrade
from storage.usecases.audit import Audit
from storage.usecases.derived import Derivation
from storage.usecases.hl7_inbox import Hl7Inbox, InboxConfig
from storage.usecases.incoming_reports import IncomingReports
from storage.usecases.ingest import Ingest, PatientIdentity
from storage.usecases.mpps import Mpps
from storage.usecases.orders import Orders
from storage.usecases.outbox import OutboxConfig, ReportOutbox
from storage.usecases.peers import Peers
from storage.usecases.publish import PublishConfig, Publisher
from storage.usecases.qa import Qa
from storage.usecases.query import Query
from storage.usecases.retrieve import Retrieve
from storage.usecases.search import SUPPORTED_TYPES, Search
from storage.usecases.structured_reports import StructuredReports
from storage.usecases.worklist import Worklist
from storage.usecases.writes import Json, WriteHook, Writes


@dataclass(frozen=True)
class BuiltinAuth:
    """The built-in SMART authorization server."""

    config: AuthConfig
    keys: KeyRing
    registry: Registry
    tokens: Tokens
    sessions: Sessions
    server: SmartServer
    authorization: Authorization


@dataclass(frozen=True)
class AuthServices:
    guard: Guard
    rules: VisibilityRules
    parse_scopes: Callable[[str | None], ScopeSet]
    builtin: BuiltinAuth | None  # None in external mode
    external: ExternalAuthConfig | None


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    blobs: FileBlobStore
    ingest: Ingest
    store: FhirStore
    publisher: Publisher
    search: Search
    audit: Audit
    auth: AuthServices
    qa: Qa
    query: Query
    peers: Peers
    retrieve: Retrieve
    orders: Orders
    hl7_inbox: Hl7Inbox
    worklist: Worklist
    mpps: Mpps
    writes: Writes
    outbox: ReportOutbox  # ORU^R01 out: `report_changed` in the report write, delivered by `facade serve`

    def close(self) -> None:
        """Index what C-STORE acknowledged (for a while: the rest is recovered on the next start),
        then release the database; `facade serve` flushed the audit trail before (its last worker run)."""
        self.ingest.close()
        self.db.dispose()


def build_services(
    settings: Settings, *, migrate: bool = True, now: Callable[[], datetime] = utcnow
) -> Services:
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
    derivation = Derivation(store, zone)
    publisher = Publisher(
        db,
        store,
        derivation,
        PublishConfig(stable_age=settings.stable_age(), base_url=settings.resolved_base_url()),
    )
    search = Search(db, store, derivation, site_zone=zone, default_count=settings.search_default_count)
    ingest = Ingest(
        db,
        blobs,
        identity,
        min_free_bytes=settings.min_free_bytes,
        patient_mismatch=settings.patient_mismatch,
        reports=StructuredReports(store, zone),
    )
    audit = Audit(AuditStore(db), now=now)
    auth = build_auth(settings, db, store, search, now=now)
    retrieve = Retrieve(db, blobs, search)
    orders = Orders(store, zone)
    mpps = Mpps(db, orders, store, identity, site_zone=zone, now=now)
    outbox = ReportOutbox(db, store, outbox_config(settings), now=now, derivation=derivation)
    outbox.sync_configured(settings.oru_destination_entries())
    return Services(
        settings,
        db,
        blobs,
        ingest,
        store,
        publisher,
        search,
        audit,
        auth,
        Qa(db),
        Query(db, search),
        Peers(db, now=now),
        retrieve,
        orders,
        Hl7Inbox(
            db,
            orders,
            inbox_config(settings, identity),
            now=now,
            audit=audit,
            mpps=mpps,
            reports=IncomingReports(store, zone),
            replies=outbox,
        ),
        Worklist(db),
        mpps,
        Writes(db, store, site_zone=zone, now=now, hooks=[report_hook(outbox)]),
        outbox,
    )


def report_hook(outbox: ReportOutbox) -> WriteHook:
    """A DiagnosticReport written over FHIR goes to the ORU outbox in its own transaction (the
    outbox decides whether this change is one to send)."""

    def hook(
        session: Session, res_type: str, before: Json | None, stored: StoredResource, now: datetime
    ) -> None:
        if res_type == "DiagnosticReport" and stored.body is not None:
            outbox.report_changed(session, before, stored.to_json(), now)

    return hook


def outbox_config(settings: Settings) -> OutboxConfig:
    return OutboxConfig(
        sender=Sender(settings.oru_sending_application, settings.oru_sending_facility),
        backoff_base=settings.oru_retry_base_seconds,
        backoff_max=settings.oru_retry_max_seconds,
        max_attempts=settings.oru_max_attempts,
        # a batch to one destination sends one message at a time, each waiting its ACK at most
        lease=max(300.0, 2 * (settings.oru_connect_timeout + settings.oru_ack_timeout)),
    )


def inbox_config(settings: Settings, identity: PatientIdentity) -> InboxConfig:
    rules = OrderRules(
        default_system=identity.default_system,
        issuer_system=identity.issuer_system,
        patient_id_authority=settings.hl7_patient_id_authority,
        stations={k: tuple(v) for k, v in settings.worklist_stations.items()},
        modalities=settings.hl7_modalities,
    )
    charset: Charset | None = charset_named(settings.hl7_default_charset)
    assert charset is not None  # the settings validated it
    return InboxConfig(
        rules=rules,
        default_charset=charset,
        application=settings.dicom_ae_title,
        allowed_senders=tuple(settings.allowed_hl7_senders()),
    )


def build_auth(
    settings: Settings, db: Database, store: FhirStore, search: Search, *, now: Callable[[], datetime]
) -> AuthServices:
    rules = VisibilityRules(SUPPORTED_TYPES, search.criteria)

    @lru_cache(maxsize=4096)
    def parse(text: str | None) -> ScopeSet:
        return parse_scopes(text, served=SUPPORTED_TYPES, valid_query=rules.valid_query)

    base = settings.resolved_base_url()
    fetcher = JwksFetcher()
    verifier: TokenVerifier
    if settings.auth_mode == "external":
        external = ExternalAuthConfig(
            issuer=settings.auth_external_issuer or "",
            audience=settings.auth_external_audience or f"{base}/fhir",
            authorization_endpoint=settings.auth_external_authorize_url,
            token_endpoint=settings.auth_external_token_url,
            jwks_uri=settings.auth_external_jwks_uri,
            algorithms=tuple(a.strip() for a in settings.auth_external_algorithms.split(",") if a.strip()),
            introspection_url=settings.auth_external_introspection_url,
            introspection_client_id=settings.auth_external_client_id,
            introspection_client_secret=settings.auth_external_client_secret,
            scope_claim=settings.auth_external_scope_claim,
            patient_claim=settings.auth_external_patient_claim,
            fhir_user_claim=settings.auth_external_fhir_user_claim,
            now=now,
        )
        if external.jwks_uri:
            verifier = JwtVerifier(external, rules, parse, fetcher)
        else:
            verifier = IntrospectionVerifier(external, rules, parse)
        return AuthServices(Guard(verifier), rules, parse, None, external)

    config = AuthConfig(
        base_url=base,
        access_token_seconds=settings.auth_access_token_seconds,
        backend_token_seconds=settings.auth_backend_token_seconds,
        code_seconds=settings.auth_code_seconds,
        session_seconds=settings.auth_session_seconds,
        offline_refresh_days=settings.auth_offline_refresh_days,
        now=now,
    )
    keys = KeyRing(settings.data_dir / "keys")
    keys.ensure()
    registry = Registry(db, store, now=now)
    tokens = Tokens(db, now=now)
    sessions = Sessions(db, now=now)
    assertion = PrivateKeyJwt(
        db,
        fetcher,
        token_url=config.token_url,
        max_lifetime=config.assertion_max_seconds,
        skew=config.clock_skew_seconds,
        now=now,
    )
    server = SmartServer(
        config=config, registry=registry, tokens=tokens, keys=keys, parse_scopes=parse, assertion=assertion
    )
    authorization = Authorization(server, sessions, search, config, parse)
    builtin = BuiltinAuth(config, keys, registry, tokens, sessions, server, authorization)
    return AuthServices(Guard(LocalVerifier(tokens, rules, parse)), rules, parse, builtin, None)


def software_version() -> str:
    try:
        return version("fhir-imaging-facade")
    except PackageNotFoundError:
        return "0+unknown"
