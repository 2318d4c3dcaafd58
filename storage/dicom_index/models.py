"""The DICOM index (patient / study / series / instance): what arrived, as DICOM facts, with the
counters C-FIND, QIDO-RS and the FHIR mapping need.

`change_seq` / `published_seq` on patient and study say whether the derived FHIR resource is
behind the index: ingest bumps `change_seq` in the same transaction that stores the instance;
publishing sets `published_seq` to the value it saw.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.schema import Base, Id, Stamp


class PatientRow(Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("id_system", "patient_id", name="uq_patient_identity"),)

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    fhir_id: Mapped[str] = mapped_column(String(64), unique=True)
    id_system: Mapped[str | None] = mapped_column(String(255))
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)  # C-FIND / QIDO by it alone
    name: Mapped[str] = mapped_column(String(512), default="")
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(Stamp)
    changed_at: Mapped[datetime] = mapped_column(Stamp)
    change_seq: Mapped[int] = mapped_column(Integer, default=1)
    published_seq: Mapped[int] = mapped_column(Integer, default=0, index=True)
    # an HL7 merge (ADT^A40) folded this patient into another: its studies and orders moved there
    merged_into: Mapped[int | None] = mapped_column(
        Id, index=True
    )  # a patient.pk (no FK: SQLite would rebuild the table)


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


class PatientMismatchRow(Base):
    """An instance kept in a stored study although it named another patient (a different non-empty
    Patient ID, or a stated issuer of another system): FACADE_PATIENT_MISMATCH=accept. The study keeps
    its patient; this row is what an administrator lists (`facade qa mismatches`). The identifiers
    are PHI: they live here, never in a log."""

    __tablename__ = "patient_mismatch"

    pk: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(Stamp, index=True)
    sop_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_id_system: Mapped[str | None] = mapped_column(String(255))  # the patient the study belongs to
    study_patient_id: Mapped[str | None] = mapped_column(String(64))
    instance_id_system: Mapped[str | None] = mapped_column(String(255))  # what the instance carried
    instance_patient_id: Mapped[str | None] = mapped_column(String(64))
    received_via: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str | None] = mapped_column(String(16))
