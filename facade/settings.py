"""Settings: `FACADE_*` environment variables, read here and nowhere else."""

from __future__ import annotations

import os
from contextlib import suppress
from datetime import timedelta, tzinfo
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mapping.hl7.charsets import charset_named
from smart_auth.config import MAX_TOKEN_SECONDS, MIN_TOKEN_SECONDS, is_loopback


def settings_error(exc: ValidationError) -> str:
    """A startup refusal naming each bad setting, without pydantic's URLs and input echo twice."""
    return "; ".join(
        f"FACADE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACADE_", extra="ignore")

    data_dir: Path = Path("./facade-data")
    database_url: str | None = None  # None: SQLite file inside data_dir
    base_url: str | None = None  # public URL (links, Endpoint.address); None: http://<http_host>:<http_port>

    # serving processes sharing the DICOM and HTTP ports (`facade serve --workers`); None: one per
    # core. Limits such as dicom_max_associations apply per process.
    workers: int | None = Field(None, ge=1)
    # internal: set by `facade serve` for the processes it starts ("dicom=FD,http=FD")
    inherited_sockets: str | None = None

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    dicom_host: str = "127.0.0.1"
    dicom_port: int = 11112
    dicom_ae_title: str = "FACADE"
    dicom_allowed_calling_aets: str = ""  # comma-separated; empty: any calling AE
    dicom_require_called_aet: bool = True
    dicom_max_pdu: int = 262144
    dicom_max_associations: int = Field(64, ge=1)  # associations at once (A-ASSOCIATE-RJ beyond)
    dicom_max_associations_per_peer: int = Field(16, ge=1)  # from one IP address
    dicom_acse_timeout: float = Field(5.0, gt=0)  # s: ARTIM, a connection must associate by then
    dicom_network_timeout: float = Field(60.0, gt=0)  # s: an idle association is aborted
    dicom_fast_path: bool = True  # storage and query associations on our own path (not pynetdicom's)
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_max_connections: int = Field(32, ge=1)  # at once; more are accepted and closed at once
    mllp_max_bytes: int = Field(16 * 1024**2, ge=1)  # one HL7 message; larger: the connection is closed
    mllp_idle_timeout: float = Field(300.0, gt=0)  # s: a silent connection is closed
    mllp_allowed_hosts: str = ""  # comma-separated IP addresses and CIDR networks; empty: anyone

    timezone: str | None = None  # IANA zone of the site's modalities; None: this machine's zone
    patient_id_system: str = "urn:facade:patient-id"  # system of Patient IDs with no issuer
    issuer_system_base: str = "urn:facade:issuer"  # <base>:<issuer> for a local IssuerOfPatientID
    issuer_systems: dict[str, str] = {}  # JSON: {"LOCAL_ISSUER": "urn:oid:..."}
    # an instance of a stored study naming another Patient ID or issuer: refused (0xC001), or kept
    # in the study and listed by `facade qa mismatches`
    patient_mismatch: Literal["refuse", "accept"] = "refuse"

    # HL7 v2 orders over MLLP (hl7_interface/)
    hl7_default_charset: str = "UNICODE UTF-8"  # a message without MSH-18 (ASCII is a subset of UTF-8)
    hl7_allowed_senders: str = ""  # comma-separated APP or APP^FACILITY (MSH-3/MSH-4); empty: anyone
    hl7_patient_id_authority: str = ""  # PID-3.4.1 of the Patient ID to use; empty: first MR, else first
    hl7_modalities: dict[str, str] = {}  # JSON: OBR-24 / IPC-5 value -> DICOM modality, e.g. {"RAD": "CR"}
    # JSON: "MODALITY" or "MODALITY@LOCATION" (PV1-3.1) -> Scheduled Station AE Titles for ORM orders
    worklist_stations: dict[str, list[str]] = {}
    # a worklist query that names no Scheduled Station AE Title gets the calling AE title's steps
    worklist_calling_ae_as_station: bool = False

    # ORU^R01 out (storage/usecases/outbox.py): destinations besides `facade destination add`,
    # comma-separated host:port or name=host:port (name default: host:port), synced into the table
    oru_destinations: str = ""
    oru_sending_application: str = "FACADE"  # MSH-3
    oru_sending_facility: str = ""  # MSH-4
    oru_retry_base_seconds: float = Field(1.0, gt=0)  # wait before the second try; doubled each try
    oru_retry_max_seconds: float = Field(300.0, gt=0)  # longest wait between tries
    oru_max_attempts: int = Field(100, ge=1)  # tries before a message becomes a dead letter
    oru_connect_timeout: float = Field(5.0, gt=0)  # s
    oru_ack_timeout: float = Field(30.0, gt=0)  # s: no ACK by then, the message is tried again later

    stable_age_seconds: float = 60.0  # a study quiet this long gets its settled FHIR version
    stow_max_bytes: int = 4 * 1024**3
    cors_origins: str = ""  # comma-separated origins of browser viewers, besides registered redirect URIs
    stow_max_parts: int = Field(10_000, ge=1)  # parts (instances) in one STOW-RS request; more: 413
    min_free_bytes: int = 256 * 1024**2  # below this, storing is refused (0xA700 / 503) while still possible
    search_default_count: int = 20
    log_level: str = "INFO"

    # SMART on FHIR: the built-in authorization server, or tokens from an external one
    auth_mode: Literal["builtin", "external"] = "builtin"
    auth_access_token_seconds: int = Field(MAX_TOKEN_SECONDS, ge=MIN_TOKEN_SECONDS, le=MAX_TOKEN_SECONDS)
    auth_backend_token_seconds: int = Field(300, ge=MIN_TOKEN_SECONDS, le=MAX_TOKEN_SECONDS)
    auth_code_seconds: int = Field(60, ge=10, le=600)
    auth_session_seconds: int = Field(8 * 3600, ge=300)
    auth_offline_refresh_days: int = Field(90, ge=1)
    auth_external_issuer: str | None = None
    auth_external_audience: str | None = None  # default: our FHIR base URL
    auth_external_jwks_uri: str | None = None
    auth_external_algorithms: str = "RS256,RS384,ES256,ES384,PS256"
    auth_external_introspection_url: str | None = None
    auth_external_client_id: str | None = None
    auth_external_client_secret: str | None = None  # no default: a secret never has one
    auth_external_authorize_url: str | None = None
    auth_external_token_url: str | None = None
    auth_external_scope_claim: str = "scope"
    auth_external_patient_claim: str = "patient"
    auth_external_fhir_user_claim: str = "fhirUser"

    @field_validator("dicom_ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        if not 0 < len(value.strip()) <= 16 or "\\" in value:
            raise ValueError("an AE title has 1 to 16 characters and no backslash")
        return value.strip()

    @field_validator("hl7_default_charset")
    @classmethod
    def _hl7_charset(cls, value: str) -> str:
        if charset_named(value) is None:
            raise ValueError("an MSH-18 character set: ASCII, 8859/1 ... 8859/9, UNICODE UTF-8, ISO IR87")
        return value

    @field_validator("oru_destinations")
    @classmethod
    def _oru_destinations(cls, value: str) -> str:
        oru_destination_list(value)
        return value

    @field_validator("mllp_allowed_hosts")
    @classmethod
    def _mllp_allowed_hosts(cls, value: str) -> str:
        for entry in filter(None, (e.strip() for e in value.split(","))):
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR network: {entry!r}") from None
        return value

    @field_validator("patient_mismatch", mode="before")
    @classmethod
    def _patient_mismatch(cls, value: object) -> object:
        choice = value.strip().lower() if isinstance(value, str) else value
        if choice not in ("refuse", "accept"):
            raise ValueError(f"refuse (the default) or accept, not {value!r}")
        return choice

    def extra_cors_origins(self) -> set[str]:
        """FACADE_CORS_ORIGINS as origins: scheme://host[:port], without a path or a slash."""
        return {o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()}

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'index.sqlite3').resolve()}"

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def inherited(self) -> dict[str, int]:
        """The listening sockets a serving process was handed, by listener name."""
        if not self.inherited_sockets:
            return {}
        pairs = (item.split("=", 1) for item in self.inherited_sockets.split(","))
        return {name: int(fd) for name, fd in pairs}

    def resolved_base_url(self) -> str:
        return (self.base_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def insecure_auth(self) -> str | None:
        """Why the authorization setup must not serve, or None. OAuth needs TLS except on loopback
        (RFC 6749 1.6, RFC 8252 7.3); external mode needs an issuer and a way to check tokens."""
        base = urlsplit(self.resolved_base_url())
        if self.auth_mode == "builtin":
            if base.scheme != "https" and not is_loopback(base.hostname):
                return "FACADE_BASE_URL must be https:// (plain http is accepted on loopback only)"
            return None
        if not self.auth_external_issuer:
            return "FACADE_AUTH_EXTERNAL_ISSUER is required in external mode"
        if not self.auth_external_jwks_uri and not self.auth_external_introspection_url:
            return (
                "external mode needs FACADE_AUTH_EXTERNAL_JWKS_URI or FACADE_AUTH_EXTERNAL_INTROSPECTION_URL"
            )
        if self.auth_external_introspection_url and not (
            self.auth_external_client_id and self.auth_external_client_secret
        ):
            return "introspection needs FACADE_AUTH_EXTERNAL_CLIENT_ID and FACADE_AUTH_EXTERNAL_CLIENT_SECRET"
        return None

    def oru_destination_entries(self) -> list[tuple[str, str, int]]:
        """FACADE_ORU_DESTINATIONS as (name, host, port)."""
        return oru_destination_list(self.oru_destinations)

    def allowed_hl7_senders(self) -> list[str]:
        return [s.strip() for s in self.hl7_allowed_senders.split(",") if s.strip()]

    def allowed_calling_aets(self) -> list[str]:
        return [ae.strip() for ae in self.dicom_allowed_calling_aets.split(",") if ae.strip()]

    def mllp_allowed_networks(self) -> list[IPv4Network | IPv6Network]:
        """FACADE_MLLP_ALLOWED_HOSTS as networks (an address: a network of one); empty: anyone."""
        return [ip_network(e.strip(), strict=False) for e in self.mllp_allowed_hosts.split(",") if e.strip()]

    def site_zone(self) -> tzinfo:
        return ZoneInfo(self.timezone) if self.timezone else local_zone()

    def stable_age(self) -> timedelta:
        return timedelta(seconds=self.stable_age_seconds)


def oru_destination_list(value: str) -> list[tuple[str, str, int]]:
    """`host:port` or `name=host:port` (an IPv6 host in brackets), comma-separated; ValueError
    naming the entry that is neither."""
    out = []
    for entry in filter(None, (e.strip() for e in value.split(","))):
        name, _, address = entry.rpartition("=")
        host, _, port = address.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        if not host or not port.strip().isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not host:port or name=host:port: {entry!r}")
        out.append((name.strip() or address.strip(), host, int(port)))
    return out


def local_zone() -> tzinfo:
    """This machine's IANA zone (TZ, /etc/timezone, /etc/localtime), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    with suppress(OSError):
        target = os.readlink("/etc/localtime")
        candidates.append(target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "")
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")
