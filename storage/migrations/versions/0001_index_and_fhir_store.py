"""index and FHIR store

Revision ID: 0001
Revises:
Create Date: 2026-11-24 06:32:18.434394
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fhir_resource",
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("res_type", "res_id", name=op.f("pk_fhir_resource")),
    )
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.create_index("ix_fhir_resource_type_updated", ["res_type", "last_updated"], unique=False)

    op.create_table(
        "fhir_version",
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("res_type", "res_id", "version_id", name=op.f("pk_fhir_version")),
    )
    op.create_table(
        "instance_replacement",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("old_sha256", sa.String(length=64), nullable=False),
        sa.Column("new_sha256", sa.String(length=64), nullable=False),
        sa.Column("old_study_uid", sa.String(length=64), nullable=False),
        sa.Column("new_study_uid", sa.String(length=64), nullable=False),
        sa.Column("old_series_uid", sa.String(length=64), nullable=False),
        sa.Column("new_series_uid", sa.String(length=64), nullable=False),
        sa.Column("received_via", sa.String(length=16), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_instance_replacement")),
    )
    with op.batch_alter_table("instance_replacement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instance_replacement_sop_uid"), ["sop_uid"], unique=False)

    op.create_table(
        "patient",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column("id_system", sa.String(length=255), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("birth_date", sa.String(length=8), nullable=False),
        sa.Column("sex", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.Column("published_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_patient")),
        sa.UniqueConstraint("fhir_id", name=op.f("uq_patient_fhir_id")),
        sa.UniqueConstraint("id_system", "patient_id", name="uq_patient_identity"),
    )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_published_seq"), ["published_seq"], unique=False)

    op.create_table(
        "search_date",
        sa.Column("low", sa.DateTime(timezone=True), nullable=False),
        sa.Column("high", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_search_date")),
    )
    with op.batch_alter_table("search_date", schema=None) as batch_op:
        batch_op.create_index("ix_search_date_resource", ["res_type", "res_id"], unique=False)
        batch_op.create_index("ix_search_date_value", ["res_type", "param", "low", "high"], unique=False)

    op.create_table(
        "search_reference",
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_search_reference")),
    )
    with op.batch_alter_table("search_reference", schema=None) as batch_op:
        batch_op.create_index("ix_search_reference_resource", ["res_type", "res_id"], unique=False)
        batch_op.create_index("ix_search_reference_value", ["res_type", "param", "target_id"], unique=False)

    op.create_table(
        "search_string",
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("exact", sa.String(length=255), nullable=False),
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_search_string")),
    )
    with op.batch_alter_table("search_string", schema=None) as batch_op:
        batch_op.create_index("ix_search_string_resource", ["res_type", "res_id"], unique=False)
        batch_op.create_index("ix_search_string_value", ["res_type", "param", "value"], unique=False)

    op.create_table(
        "search_token",
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("res_type", sa.String(length=40), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_search_token")),
    )
    with op.batch_alter_table("search_token", schema=None) as batch_op:
        batch_op.create_index("ix_search_token_resource", ["res_type", "res_id"], unique=False)
        batch_op.create_index("ix_search_token_value", ["res_type", "param", "code"], unique=False)

    op.create_table(
        "study",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("study_date", sa.String(length=8), nullable=False),
        sa.Column("study_time", sa.String(length=16), nullable=False),
        sa.Column("tz_offset", sa.String(length=5), nullable=False),
        sa.Column("accession", sa.String(length=16), nullable=False),
        sa.Column("accession_system", sa.String(length=255), nullable=True),
        sa.Column("accession_assigner", sa.String(length=64), nullable=True),
        sa.Column("study_id", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=64), nullable=False),
        sa.Column("referring_physician", sa.String(length=512), nullable=False),
        sa.Column("procedure_codes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("modalities", sa.String(length=255), nullable=False),
        sa.Column("num_series", sa.Integer(), nullable=False),
        sa.Column("num_instances", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.Column("published_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["patient_pk"], ["patient.pk"], name=op.f("fk_study_patient_pk_patient")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_study")),
        sa.UniqueConstraint("study_uid", name=op.f("uq_study_study_uid")),
    )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_accession"), ["accession"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_changed_at"), ["changed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_patient_pk"), ["patient_pk"], unique=False)
        batch_op.create_index("ix_study_pending", ["published_seq", "change_seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_study_date"), ["study_date"], unique=False)

    op.create_table(
        "series",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=64), nullable=False),
        sa.Column("body_part", sa.String(length=16), nullable=False),
        sa.Column("laterality", sa.String(length=16), nullable=False),
        sa.Column("series_date", sa.String(length=8), nullable=False),
        sa.Column("series_time", sa.String(length=16), nullable=False),
        sa.Column("performing_physician", sa.String(length=512), nullable=False),
        sa.Column("num_instances", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["study_pk"], ["study.pk"], name=op.f("fk_series_study_pk_study")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_series")),
        sa.UniqueConstraint("series_uid", name=op.f("uq_series_series_uid")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_modality"), ["modality"], unique=False)
        batch_op.create_index(batch_op.f("ix_series_study_pk"), ["study_pk"], unique=False)

    op.create_table(
        "instance",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("series_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(length=64), nullable=False),
        sa.Column("character_set", sa.String(length=255), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("columns", sa.Integer(), nullable=True),
        sa.Column("number_of_frames", sa.Integer(), nullable=True),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("received_via", sa.String(length=16), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["series_pk"], ["series.pk"], name=op.f("fk_instance_series_pk_series")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_instance")),
        sa.UniqueConstraint("sop_uid", name=op.f("uq_instance_sop_uid")),
    )
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instance_series_pk"), ["series_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_instance_sop_class_uid"), ["sop_class_uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_sop_class_uid"))
        batch_op.drop_index(batch_op.f("ix_instance_series_pk"))

    op.drop_table("instance")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_pk"))
        batch_op.drop_index(batch_op.f("ix_series_modality"))

    op.drop_table("series")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_study_date"))
        batch_op.drop_index("ix_study_pending")
        batch_op.drop_index(batch_op.f("ix_study_patient_pk"))
        batch_op.drop_index(batch_op.f("ix_study_changed_at"))
        batch_op.drop_index(batch_op.f("ix_study_accession"))

    op.drop_table("study")
    with op.batch_alter_table("search_token", schema=None) as batch_op:
        batch_op.drop_index("ix_search_token_value")
        batch_op.drop_index("ix_search_token_resource")

    op.drop_table("search_token")
    with op.batch_alter_table("search_string", schema=None) as batch_op:
        batch_op.drop_index("ix_search_string_value")
        batch_op.drop_index("ix_search_string_resource")

    op.drop_table("search_string")
    with op.batch_alter_table("search_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_search_reference_value")
        batch_op.drop_index("ix_search_reference_resource")

    op.drop_table("search_reference")
    with op.batch_alter_table("search_date", schema=None) as batch_op:
        batch_op.drop_index("ix_search_date_value")
        batch_op.drop_index("ix_search_date_resource")

    op.drop_table("search_date")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_published_seq"))

    op.drop_table("patient")
    with op.batch_alter_table("instance_replacement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_replacement_sop_uid"))

    op.drop_table("instance_replacement")
    op.drop_table("fhir_version")
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_resource_type_updated")

    op.drop_table("fhir_resource")
