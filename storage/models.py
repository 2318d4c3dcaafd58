"""SQLAlchemy 2 models: the DICOM index and the versioned FHIR resource store.

Two halves:
- the index (patient / study / series / instance): what arrived, as DICOM facts,
  with the counters C-FIND, QIDO-RS and the FHIR mapping need;
- the FHIR store (fhir_resource, fhir_version, search_*): every resource we serve,
  versioned, with typed search-index rows. Resources derived from the index are
  (re)published into it by `storage.publish`; client-written resources will be
  written straight into it.

`change_seq` / `published_seq` on patient and study say whether the derived FHIR
resource is behind the index: ingest bumps `change_seq` in the same transaction
that stores the instance; publishing sets `published_seq` to the value it saw.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Stamp = UtcDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PatientRow(Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("id_system", "patient_id", name="uq_patient_identity"),)

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    fhir_id: Mapped[str] = mapped_column(String(64), unique=True)
    id_system: Mapped[str | None] = mapped_column(String(255))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512), default="")
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(Stamp)
    changed_at: Mapped[datetime] = mapped_column(Stamp)
    change_seq: Mapped[int] = mapped_column(Integer, default=1)
    published_seq: Mapped[int] = mapped_column(Integer, default=0, index=True)


class StudyRow(Base):
    __tablename__ = "study"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    tz_offset: Mapped[str] = mapped_column(String(5), default="")
    accession: Mapped[str] = mapped_column(String(16), default="", index=True)
    accession_system: Mapped[str | None] = mapped_column(String(255))
    accession_assigner: Mapped[str | None] = mapped_column(String(64))
    study_id: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(64), default="")
    referring_physician: Mapped[str] = mapped_column(String(512), default="")
    procedure_codes: Mapped[list[dict[str, str | None]]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(String(64), default="")
    modalities: Mapped[str] = mapped_column(String(255), default="")  # ModalitiesInStudy, '\\'-joined
    num_series: Mapped[int] = mapped_column(Integer, default=0)
    num_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    changed_at: Mapped[datetime] = mapped_column(Stamp, index=True)
    change_seq: Mapped[int] = mapped_column(Integer, default=1)
    published_seq: Mapped[int] = mapped_column(Integer, default=0)

    patient: Mapped[PatientRow] = relationship()


Index("ix_study_pending", StudyRow.published_seq, StudyRow.change_seq)


class SeriesRow(Base):
    __tablename__ = "series"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.pk"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(64), default="")
    body_part: Mapped[str] = mapped_column(String(16), default="")
    laterality: Mapped[str] = mapped_column(String(16), default="")
    series_date: Mapped[str] = mapped_column(String(8), default="")
    series_time: Mapped[str] = mapped_column(String(16), default="")
    performing_physician: Mapped[str] = mapped_column(String(512), default="")
    num_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    changed_at: Mapped[datetime] = mapped_column(Stamp)


class InstanceRow(Base):
    __tablename__ = "instance"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.pk"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64), index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255), default="")
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    character_set: Mapped[str] = mapped_column(String(255), default="")
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # of the data set bytes, file meta excluded
    received_via: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    changed_at: Mapped[datetime] = mapped_column(Stamp)


class InstanceReplacementRow(Base):
    """A stored instance superseded by different bytes with the same SOP Instance UID."""

    __tablename__ = "instance_replacement"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sop_uid: Mapped[str] = mapped_column(String(64), index=True)
    old_sha256: Mapped[str] = mapped_column(String(64))
    new_sha256: Mapped[str] = mapped_column(String(64))
    old_study_uid: Mapped[str] = mapped_column(String(64))
    new_study_uid: Mapped[str] = mapped_column(String(64))
    old_series_uid: Mapped[str] = mapped_column(String(64))
    new_series_uid: Mapped[str] = mapped_column(String(64))
    received_via: Mapped[str] = mapped_column(String(16))
    replaced_at: Mapped[datetime] = mapped_column(Stamp)


# --- the FHIR store -----------------------------------------------------------------------------


class FhirResourceRow(Base):
    """The current version of one resource (`body` is its JSON without `meta`)."""

    __tablename__ = "fhir_resource"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(Stamp)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)


Index("ix_fhir_resource_type_updated", FhirResourceRow.res_type, FhirResourceRow.last_updated)


class FhirVersionRow(Base):
    """Every retained version, the current one included (`body` None for a deletion)."""

    __tablename__ = "fhir_version"

    res_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(Stamp)
    body: Mapped[str | None] = mapped_column(Text)


class _SearchRow:
    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    res_type: Mapped[str] = mapped_column(String(40))
    res_id: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(64))


class SearchToken(_SearchRow, Base):
    """token and uri parameters: `system` None when the value has none."""

    __tablename__ = "search_token"
    system: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(255))


class SearchString(_SearchRow, Base):
    """string parameters: `value` normalised (case-folded, accents removed) for prefix matching."""

    __tablename__ = "search_string"
    value: Mapped[str] = mapped_column(String(255))
    exact: Mapped[str] = mapped_column(String(255))


class SearchDate(_SearchRow, Base):
    """date parameters as the half-open UTC range [low, high) the value covers."""

    __tablename__ = "search_date"
    low: Mapped[datetime] = mapped_column(Stamp)
    high: Mapped[datetime] = mapped_column(Stamp)


class SearchReference(_SearchRow, Base):
    """reference parameters to resources in this server."""

    __tablename__ = "search_reference"
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(64))


for _table in (SearchToken, SearchString, SearchDate, SearchReference):
    Index(f"ix_{_table.__tablename__}_resource", _table.res_type, _table.res_id)
Index("ix_search_token_value", SearchToken.res_type, SearchToken.param, SearchToken.code)
Index("ix_search_string_value", SearchString.res_type, SearchString.param, SearchString.value)
Index("ix_search_date_value", SearchDate.res_type, SearchDate.param, SearchDate.low, SearchDate.high)
Index("ix_search_reference_value", SearchReference.res_type, SearchReference.param, SearchReference.target_id)
